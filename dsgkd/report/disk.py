"""What a search left on disk per trial: which trials still hold a checkpoint, and the bytes each keeps.

`dsgkd.search.prune` drops the checkpoints of finished trials outside the best `budget.kept_checkpoints`
KD-on ones, so what a finished trial keeps beyond its results is visible here (RUN/analysis/checkpoints.md
and a line of the summary), measured on disk rather than assumed. A trial's bytes are its Tune trial directory
plus, for a multi-worker trial, its Train run RUN/train/train-<id>/.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dsgkd.report.run_model import FINISHED, Run
from dsgkd.search.prune import checkpoint_dirs, trial_dirs


def tree_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) if directory.is_dir() else 0


def disk_table(run: Run) -> pd.DataFrame:
    """One row per trial: rank among the finished KD-on trials (the order pruning keeps by), whether it still
    has a checkpoint, the bytes in its checkpoints and in everything else it keeps."""
    rank = {t.trial_id: i for i, t in enumerate(run.ranked([t for t in run.trials if t.finished and t.kd_on]), 1)}
    rows = []
    for t in run.ranked():
        dirs = trial_dirs(t) if t.path is not None else []
        ckpt = sum(tree_bytes(c) for d in dirs for c in checkpoint_dirs(d))
        rows.append({"trial": t.trial_id, "status": t.status, "kd": "on" if t.kd_on else "off",
                     "kd_on_rank": rank.get(t.trial_id), "checkpoint": "yes" if ckpt else "no",
                     "checkpoint_bytes": ckpt, "other_bytes": sum(tree_bytes(d) for d in dirs) - ckpt})
    df = pd.DataFrame(rows, columns=["trial", "status", "kd", "kd_on_rank", "checkpoint", "checkpoint_bytes",
                                     "other_bytes"])
    return df.astype({"kd_on_rank": "Int64"})


def disk_note(run: Run, df: pd.DataFrame) -> str:
    """One line: which finished trials kept their checkpoint, and what the others keep."""
    finished = df[df["status"] == FINISHED]
    kept, rest = finished[finished["checkpoint"] == "yes"], finished[finished["checkpoint"] == "no"]
    total = finished["checkpoint_bytes"] + finished["other_bytes"]
    line = (f"disk: {len(kept)} of {len(finished)} finished trials keep a checkpoint (budget.keep_checkpoints "
            f"{run.space.budget.kept_checkpoints}: the best KD-on ones)")
    if len(kept):
        line += ": " + ", ".join(f"{r.trial} {_size(r.checkpoint_bytes + r.other_bytes)}" for r in kept.itertuples())
    if len(rest):
        left = total[rest.index]
        line += (f"; the other {len(rest)} keep only their results (result.json, progress.csv, params, events): "
                 f"{_size(left.min())}–{_size(left.max())} each")
    return line


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
