"""A table's record: the small files that carry its figures, without the models, teacher caches, generated notes
and Ray trials that make up nearly all of its size.

A table on 2 cores outlives a session, and a machine can be gone before its table finishes (a spot node, a fresh
CI machine): everything under OUT is then lost, and `dsgkd table` resumes only where its OUT still is. The record
is what a resumed table skips on and what `--render-only` reads: the protocol, results.json and results.md, the
clock's invocation.json, every finished run's metrics.json, predictions.csv and probe.json (recipe grid, teacher
fine-tunes, rows, n-gram), each search's exported best.yaml, and the stand-ins the table trained with.

The stand-ins travel because a table must read the very models it started with: up to BUILD_VERSION 4 the
tokenizer trainers made every build different (two builds of biobert-tiny on one corpus gave different
vocabularies), and a code change that bumps BUILD_VERSION builds other models under other folders. A table writes
OUT/stand_ins.json (each stand-in's cache folder and content hash) on its first run and refuses a later run whose
cache holds other builds; a record carries the folders (about 3 MB each) and installs them into an empty cache.
Copied back into an OUT, the same `dsgkd table` command resumes there: the notes are regenerated from
their seeds, finished runs and searches are skipped, and what a remaining row still needs (a seed's fine-tuned
teacher, the teacher caches) is rebuilt from the recorded stand-ins. A search cut off before its best.yaml starts
again.
"""
from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.experiments.table_protocol import PROTOCOL_FILE, differences
from dsgkd.experiments.term_probe import PROBE_FILE
from dsgkd.experiments.table_clock import FILE as CLOCK_FILE
from dsgkd.storage import atomic_file, atomic_write_text, staged_dir

STAND_INS = "stand_ins.json"
STAND_IN_FOLDER = "stand_ins"  # the record's copies of the stand-ins' cache folders
RECORD_FILES = frozenset({PROTOCOL_FILE, STAND_INS, "results.json", "results.md", CLOCK_FILE, "metrics.json",
                          "predictions.csv", PROBE_FILE, "best.yaml"})
# A search's Ray trials hold metrics.json files of their own; the rows' caches and models hold none of the
# record's names, but walking them would read gigabytes of directory entries for nothing.
SKIPPED_DIRS = frozenset({"tune", "teacher_cache", "student", "data", STAND_IN_FOLDER})


def build_hash(folder: Path) -> str:
    """One stand-in build: its files' names and bytes, its build record's timings included, so a rebuild (even
    into the same weights) is never taken for the build a table started with."""
    digest = hashlib.sha256()
    for f in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def check_stand_ins(out: Path, dirs: dict[str, Path]) -> None:
    """Record the stand-ins (ref → cache folder) a table trains with on its first run; refuse a later run whose
    cache holds another build of one of them."""
    path = Path(out) / STAND_INS
    now = {ref: {"folder": Path(d).name, "sha256": build_hash(d)} for ref, d in sorted(dirs.items())}
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for ref, entry in now.items():
        if ref in saved and saved[ref] != entry:
            raise UserError(f"{Path(dirs[ref])}: another build of {ref} than the one {out} was started with "
                            f"({saved[ref]['folder']}); resume with the code it started with ({PROTOCOL_FILE}: "
                            "code) and its record's stand-ins (`dsgkd table-record RECORD OUT` into an empty "
                            "DSGKD_CACHE), or use a new --out")
    if any(ref not in saved for ref in now):
        atomic_write_text(path, json.dumps({**saved, **now}, indent=1))


def record_files(table: Path) -> list[Path]:
    """The record's files under `table`, relative to it. Links are not followed: a pair's teacher rows link to
    the shared fine-tunes under OUT/teachers, which the walk reaches there."""
    found = []
    for folder, dirs, files in os.walk(table, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        found += [Path(folder, f).relative_to(table) for f in sorted(files)
                  if f in RECORD_FILES and not Path(folder, f).is_symlink()]
    return found


def copy_record(src: Path, dest: Path) -> list[Path]:
    """Copy `src`'s record (a table's OUT, or a record saved from one) into `dest` (a record, or an OUT to resume
    in), writing only files that differ, and install its stand-ins into the cache where it has none; an
    invocation.json `src` no longer has goes (a next run would count that invocation twice). Refuses,
    before writing anything, when `src` holds no table, `dest` holds a table run under another protocol, or a
    stand-in is missing or another build. Returns the files written or removed."""
    src, dest = Path(src), Path(dest)
    files = record_files(src) if src.is_dir() else []
    protocols = [f for f in files if f.name == PROTOCOL_FILE]
    if not protocols:
        raise UserError(f"{src}: holds no {PROTOCOL_FILE}; give a table's --out or a record saved from one")
    if src.resolve() == dest.resolve() or dest.resolve().is_relative_to(src.resolve()):
        raise UserError(f"{dest}: is {src} or inside it; save the record elsewhere")
    for rel in protocols:
        theirs = dest / rel
        if theirs.is_file():
            diff = differences(json.loads(theirs.read_text(encoding="utf-8")),
                               json.loads((src / rel).read_text(encoding="utf-8")))
            if diff:
                raise UserError(f"{theirs}: a table run under another protocol (differs in {', '.join(diff)}); "
                                "copy the record into a new folder")
    models = [m for rel in files if rel.name == STAND_INS for m in _stand_ins(src, rel)]
    written = []
    for rel in files:
        target = dest / rel
        if not (target.is_file() and filecmp.cmp(src / rel, target, shallow=False)):
            _copy_file(src / rel, target)
            written.append(rel)
    for rel in protocols:  # a table that has finished since: its clock lives on in results.json only
        clock = dest / rel.parent / CLOCK_FILE
        if not (src / rel.parent / CLOCK_FILE).is_file() and clock.is_file():
            clock.unlink()
            written.append(rel.parent / CLOCK_FILE)
    for rel, source in models:
        if not (dest / rel).is_dir():
            _copy_folder(source, dest / rel)
            written.append(rel)
        if not (cache_models() / source.name).is_dir():
            _copy_folder(source, cache_models() / source.name)
    return written


def cache_models() -> Path:
    from dsgkd.models.tiny import cache_root

    return cache_root() / "models"


def _stand_ins(src: Path, listing: Path) -> list[tuple[Path, Path]]:
    """(where the record keeps it, relative; where it is now) for each stand-in `listing` names: the record's
    copy, else the cache's build, which must be the one the table started with (so must any build the
    destination's cache already holds)."""
    found = []
    for ref, entry in json.loads((src / listing).read_text(encoding="utf-8")).items():
        rel = listing.parent / STAND_IN_FOLDER / entry["folder"]
        cached = cache_models() / entry["folder"]
        source = src / rel if (src / rel).is_dir() else cached
        if not source.is_dir():
            raise UserError(f"{src / listing}: {ref} ({entry['folder']}) is neither in the record nor in the cache "
                            f"{cache_models()}; the table's stand-ins are lost with the machine that built them")
        for folder in {source, cached}:
            if folder.is_dir() and build_hash(folder) != entry["sha256"]:
                raise UserError(f"{folder}: another build of {ref} than the table's ({src / listing}); set "
                                "DSGKD_CACHE to an empty folder for this table")
        found.append((rel, source))
    return found


def _copy_file(source: Path, target: Path) -> None:
    """A copy cut off midway never leaves a metrics.json that a resume would trust."""
    with atomic_file(target) as tmp:
        shutil.copyfile(source, tmp)


def _copy_folder(source: Path, target: Path) -> None:
    with staged_dir(target, exists="keep") as stage:
        for f in source.iterdir():
            if f.is_file():
                shutil.copyfile(f, stage / f.name)
