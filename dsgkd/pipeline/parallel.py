"""Several `train_one` runs at once on one machine (the seeds × arms of `dsgkd train --seeds`, the demo's re-run).

A tiny model's step is mostly per-operation overhead, so one process gains little from a second intra-op thread
(a demo run used 1.2 of 2 cores); runs in separate processes, each with its share of the cores, fill them.
Processes are spawned and die with their parent (`dsgkd.pipeline.workers`). Each run's lines carry its tag, and
its progress is printed as plain lines, so runs side by side stay readable on one terminal.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from dsgkd import progress
from dsgkd.pipeline.workers import worker_pool


class _Tagged:
    """A text stream that starts every line with `[tag] `."""

    def __init__(self, stream, tag: str):
        self.stream, self.tag, self.at_start = stream, tag, True

    def write(self, text: str) -> int:
        for part in text.splitlines(keepends=True):
            self.stream.write(f"[{self.tag}] {part}" if self.at_start else part)
            self.at_start = part.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


def train_tagged(train_one, run, out: Path, tag: str, cache: dict[str, str] | None) -> dict:
    """`train_one` (`dsgkd.pipeline.train`'s, passed in: that module calls this one) with every line it prints
    tagged; a run whose teachers are cached (`cache`: source → directory) loads no teacher weights."""
    from dsgkd.pipeline.teachers import prepare_run

    if progress.mode() == "bar":  # one terminal, several runs: bars would overwrite each other
        os.environ[progress.ENV] = "lines"
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tagged(stdout, tag), _Tagged(stderr, tag)
    try:
        return train_one(run, out, prepared=prepare_run(run, teacher_weights=cache is None), teacher_cache=cache)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr


def train_side_by_side(train_one, jobs: list[tuple], workers: int, cache_root: Path) -> list[dict]:
    """(ResolvedRun, out directory, tag) per run, trained by `train_one`, `workers` at a time on cores // workers
    threads each; their metrics in the order of `jobs`. The teachers the KD runs read are cached under
    `cache_root` on the same processes first (`run_caches.submit`), and the runs that read no teacher (KD-off
    controls) train while they are built. A run that fails raises here."""
    from dsgkd.pipeline import run_caches

    with worker_pool(workers, threads=max(1, (os.cpu_count() or 1) // workers)) as pool:
        caches_ready = run_caches.submit([run.cfg for run, *_ in jobs], cache_root, pool)
        futures = {i: pool.submit(train_tagged, train_one, *job, None)
                   for i, job in enumerate(jobs) if not job[0].cfg.distill.kd_on}
        caches_ready()
        futures |= {i: pool.submit(train_tagged, train_one, *job, run_caches.row_cache(job[0].cfg, cache_root))
                    for i, job in enumerate(jobs) if job[0].cfg.distill.kd_on}
        return [futures[i].result() for i in range(len(jobs))]
