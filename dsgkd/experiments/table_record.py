"""A table's record: the small files that carry its figures, without the models, teacher caches, generated notes
and Ray trials that make up nearly all of its size.

A table on 2 cores outlives a session, and a machine can be gone before its table finishes (a spot node, a fresh
CI machine): everything under OUT is then lost, and `dsgkd table` resumes only where its OUT still is. The record
is what a resumed table skips on and what `--render-only` reads: the protocol, results.json and results.md, the
clock's invocation.json, every finished run's metrics.json, predictions.csv and probe.json (recipe grid, teacher
fine-tunes, rows, n-gram) and each search's exported best.yaml. Copied back into an OUT, the same `dsgkd table`
command resumes there: the notes and stand-ins are regenerated from their seeds (a grid re-run reproduces to the
digit, docs/levers.md), finished runs and searches are skipped, and what a remaining row still needs (a seed's
fine-tuned teacher, the teacher caches) is rebuilt. A search cut off before its best.yaml starts again.
"""
from __future__ import annotations

import filecmp
import json
import os
import shutil
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.experiments.table_protocol import PROTOCOL_FILE, differences
from dsgkd.experiments.term_probe import PROBE_FILE
from dsgkd.experiments.table_clock import FILE as CLOCK_FILE

RECORD_FILES = frozenset({PROTOCOL_FILE, "results.json", "results.md", CLOCK_FILE, "metrics.json",
                          "predictions.csv", PROBE_FILE, "best.yaml"})
# A search's Ray trials hold metrics.json files of their own; the rows' caches and models hold none of the
# record's names, but walking them would read gigabytes of directory entries for nothing.
SKIPPED_DIRS = frozenset({"tune", "teacher_cache", "student", "data"})


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
    in), writing only files that differ. Refuses, before copying anything, when `src` holds no table or `dest`
    holds a table run under another protocol. Returns the files written."""
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
    written = []
    for rel in files:
        target = dest / rel
        if target.is_file() and filecmp.cmp(src / rel, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(src / rel, partial)
        partial.replace(target)  # a copy cut off midway never leaves a metrics.json that a resume would trust
        written.append(rel)
    return written
