"""ASHA whose rungs survive `Tuner.restore`."""
from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler

from dsgkd.search.trial_records import parse_results


class ResumableASHA(ASHAScheduler):
    """On restore Ray re-adds every trial to the scheduler but does not restore the scheduler itself
    (ray #30838), so each re-added trial's recorded results are replayed into its bracket: the same
    values ASHA had recorded at each rung the trial passed. A new trial has no results to replay.
    """

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        bracket = self._trial_info[trial.trial_id]
        for result in recorded_results(trial):
            if result.get(self._time_attr) is not None and result.get(self._metric) is not None:
                bracket.on_result(trial, result[self._time_attr], self._metric_op * result[self._metric])


def recorded_results(trial) -> list[dict[str, Any]]:
    if not trial.storage.trial_dir_name:  # a new trial: no directory, nothing recorded
        return []
    fs, path = trial.storage.storage_filesystem, f"{trial.storage.trial_fs_path}/result.json"
    try:
        with fs.open_input_stream(path) as f:
            lines = f.read().decode("utf-8").splitlines()
    except OSError:  # restored before its first result
        return []
    return parse_results(lines)
