"""What dsgkd changes in Ray's logger callbacks (`dsgkd.search.tracking` says why): the step is the trial's
epoch, and the parameters are the trial's searched settings under one name each."""
from __future__ import annotations

from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.logger import TBXLoggerCallback

from dsgkd.search.space import flatten_params


def searched_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled settings, one name each: `layer_map/<pair>` folded into `layer_map`."""
    return {("layer_map" if k.startswith("layer_map/") else k): v for k, v in flatten_params(config)}


def epoch_step(result: dict[str, Any]) -> int:
    return result.get("epoch") or result[TRAINING_ITERATION]


class EpochTBXLogger(TBXLoggerCallback):
    """Tune's TensorBoard logger (scalars under `ray/tune/`, hparams when a trial ends), stepped by epoch."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        # TBXLoggerCallback steps by training_iteration and drops that key before logging
        super().log_trial_result(iteration, trial, {**result, TRAINING_ITERATION: epoch_step(result)})
