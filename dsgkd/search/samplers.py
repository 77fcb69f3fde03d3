"""The Optuna sampler a space asks for (`sampler:`), seeded by the space's `seed`.

Trials run concurrently, so the TPE variants use the constant liar: a trial still running counts as a bad
result, and concurrent trials are not drawn at the same promising point. Multivariate TPE uses `group`, which
models the parameters that occur together (a conditional parameter such as the temperature lives only in the
trials where logit KD is on) instead of falling back to independent sampling for a define-by-run space.
Each of the four also drives a two-objective study (`second_objective`): MOTPE, GP's log-EHVI, random.
"""
from __future__ import annotations

import warnings

SAMPLERS = ("tpe", "tpe-multivariate", "gp", "random")


def make_sampler(name: str, seed: int, n_startup: int = 10):
    """`n_startup`: random trials before the model-based samplers act (Optuna's default is 10)."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=n_startup)
    if name == "tpe-multivariate":
        with warnings.catch_warnings():  # `group` is marked experimental since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True, group=True,
                                              n_startup_trials=n_startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler {name!r}: one of {', '.join(SAMPLERS)}")
