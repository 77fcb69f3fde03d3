"""Inputs are never written over: a command's output paths are checked against its input paths first thing.

The notes a hospital hands dsgkd may exist nowhere else. A command that writes a file over one of its inputs,
or replaces a folder that holds one (`train --overwrite --out` on the data's folder), destroys them, so every
subcommand names what it reads and what it writes and calls `check_outputs` before any data, tokenizer or model
is loaded. Paths are compared after resolving symlinks (and as inodes when both exist, which catches hard links
and case-insensitive file systems). A file output may not be an input, a folder, or lie under a file; no output
may be something an input folder already holds (a student's dsgkd.json); a folder output (one the command
replaces whole or fills) may not hold an input, or be the working directory or a folder above it; two outputs may
not be one path, nor one inside a folder output.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from dsgkd.errors import UserError

PathArg = str | os.PathLike | None
Paths = Mapping[str, PathArg | Iterable[PathArg]]


def _entries(paths: Paths) -> list[tuple[str, Path]]:
    """(flag, absolute path with symlinks resolved) of every path given; None and "" are skipped."""
    out = []
    for flag, value in paths.items():
        values = [value] if value is None or isinstance(value, (str, os.PathLike)) else list(value)
        out.extend((flag, Path(os.path.realpath(os.path.abspath(os.fspath(v))))) for v in values if v)
    return out


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _under(inner: Path, outer: Path) -> bool:
    return inner != outer and inner.is_relative_to(outer)


def _file_above(path: Path) -> Path | None:
    return next((p for p in path.parents if p.exists() and not p.is_dir()), None)


def run_entries(run: PathArg, *, except_: str) -> list[Path]:
    """What a search folder holds (every entry but `except_`, the output a command writes there): the inputs
    of `analyze` and `export`."""
    run = Path(run) if run else None
    if run is None or not run.is_dir():
        return []
    return [p for p in run.iterdir() if p.name != except_]


def check_outputs(inputs: Paths, *, files: Paths | None = None, folders: Paths | None = None) -> None:
    """One line (UserError) naming both paths when an output would write over or remove an input, or two outputs
    collide. `inputs`, `files` (written or replaced files) and `folders` (folders the command replaces or fills)
    map a flag to a path or several."""
    ins, outs_file, outs_dir = _entries(inputs), _entries(files or {}), _entries(folders or {})
    cwd = Path(os.path.realpath(os.getcwd()))
    for flag, path in outs_file + outs_dir:
        above = _file_above(path)
        if above is not None:
            raise UserError(f"{flag} {path}: {above} is a file, not a folder; choose another {flag}")
    for flag, path in outs_file:
        if path.is_dir():
            raise UserError(f"{flag} {path}: is a directory; give the file to write")
    for flag, path in outs_dir:
        if path == cwd or _under(cwd, path):
            raise UserError(f"{flag} {path}: is the working directory or holds it; choose a new folder for {flag}")
    for flag, path in outs_file + outs_dir:
        for in_flag, in_path in ins:
            if _same(path, in_path):
                kind = "folder" if in_path.is_dir() else "file"
                raise UserError(f"{flag} {path}: is the input {kind} {in_flag}; write the output elsewhere")
    for flag, path in outs_file + outs_dir:
        for in_flag, in_path in ins:
            if _under(path, in_path) and os.path.lexists(path):
                raise UserError(f"{flag} {path}: is part of the input {in_flag} {in_path}; write the output "
                                "elsewhere")
    for flag, path in outs_dir:
        for in_flag, in_path in ins:
            if _under(in_path, path):
                raise UserError(f"{flag} {path}: holds the input {in_flag} {in_path}, which writing {flag} could "
                                f"remove; choose another {flag}")
    outs = outs_file + outs_dir
    for i, (flag, path) in enumerate(outs):
        for other_flag, other in outs[i + 1:]:
            if _same(path, other):
                raise UserError(f"{flag} and {other_flag}: both name {path}; give two different outputs")
    for flag, path in outs_dir:
        for other_flag, other in outs:
            if _under(other, path):
                raise UserError(f"{other_flag} {other}: is inside {flag} {path}, which is written as a whole; "
                                "give two separate outputs")
