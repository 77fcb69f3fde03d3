"""Disk that does not grow with the number of trials: finished trials outside the best K drop their checkpoints.

A trial keeps its latest checkpoint (`CheckpointConfig(num_to_keep=1)`), and that one holds the weights, the
best epoch's weights and the AdamW state in fp32: ~1.8 GB for a BERT-base student, ~4.5 GB for XLM-R base, so
a 48-trial search would leave ~200 GB on the shared file system. A finished (TERMINATED) trial is never
trained again (`Tuner.restore(resume_errored=True)` retries errored trials only), so its checkpoint only
matters to someone who wants its weights, and that is one of the trials export may pick. After every
completed trial this driver-side Tune callback ranks the finished KD-on trials by their best-so-far value
(the order export and reselect use) and deletes the `checkpoint_*` directories of every other finished trial:
in its Tune trial directory and, for a multi-worker trial, in its Train run RUN/train/train-<id>/. What
analysis, export and resume read stays: result.json, progress.csv, params.json/pkl, TensorBoard event
files, error files, the experiment state. Errored, running and pending trials are never touched.

An ASHA-stopped trial's actor may still persist one more checkpoint after it was told to stop, so every
pass looks at all finished trials again, and a last pass runs when the experiment ends (after Tune has
stopped every actor).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

from ray import tune

from dsgkd.errors import UserError
from dsgkd.search.trial_records import rank_key
from dsgkd.search.space import SearchSpace

FINISHED = "TERMINATED"


def search_value(trial, space: SearchSpace) -> tuple[float, int] | None:
    """(best-so-far value, its epoch) from a Tune trial's last report: the engine reports the running best as
    `best_<metric>` with `best_epoch`, the same number `dsgkd.report.run_model` takes as the max over epochs."""
    result = trial.last_result or {}
    value = result.get(space.tuned_metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value), int(result.get("best_epoch") or result.get("epoch") or 0)


def kd_on(trial, space: SearchSpace) -> bool:
    try:
        return space.trial_config(trial.config).distill.kd_on
    except (UserError, KeyError, StopIteration):  # a config this space cannot read counts as KD-on, as in results
        return True


def ranked_finished(space: SearchSpace, trials, *, kd: bool = True, done=None) -> list:
    """Finished trials with a value, KD-on (or, kd=False, the KD-off controls), best first. `done` is the trial
    Tune is completing: on_trial_complete runs before Tune marks it TERMINATED."""
    pool = [t for t in trials if (t.status == FINISHED or t is done) and search_value(t, space) is not None
            and kd_on(t, space) == kd]
    return sorted(pool, key=lambda t: rank_key(*search_value(t, space), t.run_metadata.start_time or math.inf,
                                               space.mode))


def trial_dirs(trial) -> list[Path]:
    """A trial's directories that can hold checkpoints: RUN/tune/trial_<id> and its Train run RUN/train/train-<id>
    (the names `dsgkd.search.tune` gives them)."""
    path = Path(trial.path)
    return [path, path.parent.parent / "train" / f"train-{trial.trial_id}"]


def checkpoint_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("checkpoint_*") if p.is_dir()) if directory.is_dir() else []


def drop_checkpoints(directories: list[Path]) -> int:
    """Delete the checkpoint directories under each of `directories`; returns how many were deleted."""
    found = [c for d in directories for c in checkpoint_dirs(d)]
    for c in found:
        shutil.rmtree(c, ignore_errors=True)  # a half-written one of a stopping actor: the next pass gets it
    return len(found)


def prune(space: SearchSpace, trials, *, done=None) -> list[str]:
    """Drop the checkpoints of finished trials outside the best `budget.kept_checkpoints` KD-on ones; returns the
    ids of the trials whose checkpoints were deleted now."""
    keep = {t.trial_id for t in ranked_finished(space, trials, done=done)[:space.budget.kept_checkpoints]}
    dropped = []
    for t in trials:
        if (t.status == FINISHED or t is done) and t.trial_id not in keep and drop_checkpoints(trial_dirs(t)):
            dropped.append(t.trial_id)
    return dropped


class CheckpointPruner(tune.Callback):
    """Runs `prune` in the Tune driver after each completed trial and once when the experiment ends. Pickled into
    RUN/tune/tuner.pkl with the run config, so a restored search keeps pruning."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def on_trial_complete(self, iteration: int, trials, trial, **info) -> None:
        self._say(prune(self.space, trials, done=trial))

    def on_experiment_end(self, trials, **info) -> None:
        self._say(prune(self.space, trials))

    def _say(self, dropped: list[str]) -> None:
        if dropped:
            print(f"[dsgkd] dropped the checkpoints of finished trial(s) {', '.join(dropped)}: outside the best "
                  f"{self.space.budget.kept_checkpoints} (budget.keep_checkpoints)")
