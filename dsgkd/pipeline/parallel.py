"""Several `train_one` runs at once on one machine (the seeds × arms of `dsgkd train --seeds`, the demo's re-run).

A tiny model's step is mostly per-operation overhead, so one process gains little from a second intra-op thread
(a demo run used 1.2 of 2 cores); runs in separate processes, each with its share of the cores, fill them.
Processes are spawned, not forked: a fork would inherit the parent's torch threads and locks. Each run's lines
carry its tag, and its progress is printed as plain lines, so runs side by side stay readable on one terminal.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from pathlib import Path

from dsgkd import progress


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


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if progress.mode() == "bar":  # one terminal, several runs: bars would overwrite each other
        os.environ[progress.ENV] = "lines"


def _train(run, out: Path, tag: str) -> dict:
    from dsgkd.pipeline.train import train_one

    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tagged(stdout, tag), _Tagged(stderr, tag)
    try:
        return train_one(run, out)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr


def train_side_by_side(jobs: list[tuple], workers: int) -> list[dict]:
    """(ResolvedRun, out directory, tag) per run, `workers` at a time, each on cores // workers threads; their
    metrics in the order of `jobs`. A run that fails raises here, after the runs already started have ended."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                initargs=(threads,)) as pool:
        futures = [pool.submit(_train, run, out, tag) for run, out, tag in jobs]
        return [future.result() for future in futures]
