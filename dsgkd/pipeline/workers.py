"""Worker processes for runs side by side (a table's jobs, `dsgkd train --seeds --parallel`): spawned (a forked
child would inherit the parent's torch thread pool and locks), and tied to their parent's life.

A `dsgkd table` stopped by a signal (a session's end, a Ctrl-C that kills the parent first, an OOM kill) used to
leave its workers training on and writing into OUT, where the resumed table then runs the same job again beside
them. On Linux each worker asks the kernel for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`); elsewhere the
pool is what it was.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _start(parent: int, threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took hold
        os.kill(os.getpid(), signal.SIGTERM)


def worker_pool(workers: int, threads: int | None = None) -> ProcessPoolExecutor:
    """`workers` spawned processes that die with this one; `threads`: each one's torch intra-op threads."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(os.getpid(), threads))
