"""Comparisons whose unit is the training seed: a hierarchical (seeds × test notes) bootstrap and Holm's step-down.

A note-level bootstrap of one seed-averaged model treats the seeds as fixed, so two arms whose seeds scatter by
±0.02 AUROC look different whenever their ensembles do. Here each draw resamples the arm's seeds with replacement
*and* the test notes with replacement (the same notes for both arms, so the note-level pairing is kept), scores
every drawn seed on the drawn notes and averages: the interval carries the seed-to-seed spread and the note
sampling together. The statistic is the mean per-seed metric, which is what a user re-running one seed gets;
the seed-averaged ensemble is a different, stronger model.

Seeds of the two arms are resampled independently by default: arm A's seed 3 and arm B's seed 3 share a data
order and a head initialisation only where both arms ran the same code path, and pairing where they do not
would understate the spread. `pair_seeds=True` draws one seed index for both arms (same seed lists required).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dsgkd.core.metrics import _bootstrap, _check, _interval, _resolve, _scorer


def _per_seed(y_true, probs, metric: str, name: str) -> tuple[np.ndarray, list]:
    """Labels and one vectorised scorer per seed (row) of `probs`, every row checked like a single model's."""
    rows = np.asarray(probs, dtype=float)
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise ValueError(f"{name} must be (seeds, notes), got shape {rows.shape}")
    _resolve(metric, None)
    checked = [_check(y_true, row) for row in rows]
    y = checked[0][0]
    return y, [_scorer(y, p, metric, None) for _, p in checked]


def _seed_draws(n_seeds: int, n_boot: int, seed: int, stream: int) -> np.ndarray:
    """Seed indices of every draw; a stream of its own, so the note draws match `evaluate_with_ci`'s."""
    return np.random.default_rng([seed, stream]).integers(0, n_seeds, size=(n_boot, n_seeds))


def _draws(y, scorers_by_arm, n_boot: int, seed: int, pair_seeds: bool) -> list[np.ndarray]:
    """Per arm: the mean metric over the drawn seeds on the drawn notes, one value per draw."""
    per_note_draw = _bootstrap(len(y), n_boot, seed, lambda idx: {
        f"{a}/{s}": f(idx) for a, scorers in enumerate(scorers_by_arm) for s, f in enumerate(scorers)})
    out = []
    for a, scorers in enumerate(scorers_by_arm):
        table = np.stack([per_note_draw[f"{a}/{s}"] for s in range(len(scorers))], axis=1)  # (n_boot, seeds)
        picks = _seed_draws(len(scorers), n_boot, seed, 1 if pair_seeds else 1 + a)
        out.append(np.take_along_axis(table, picks, axis=1).mean(axis=1))
    return out


def _full(y, scorers) -> float:
    everything = np.arange(len(y))[None]
    return float(np.mean([f(everything)[0] for f in scorers]))


def seed_note_ci(y_true, probs, metric: str = "auroc", *, n_boot: int = 2000, seed: int = 0,
                 alpha: float = 0.05) -> dict[str, float]:
    """Mean per-seed metric of one arm (`probs`: seeds × notes) with its hierarchical percentile interval."""
    y, scorers = _per_seed(y_true, probs, metric, "probs")
    (draws,) = _draws(y, [scorers], n_boot, seed, pair_seeds=False)
    value, lo, hi = _interval(_full(y, scorers), draws, alpha)
    return {"mean": value, "ci_low": lo, "ci_high": hi}


def seed_note_comparison(y_true, probs_a, probs_b, metric: str = "auroc", *, n_boot: int = 2000, seed: int = 0,
                         alpha: float = 0.05, pair_seeds: bool = False) -> dict[str, float]:
    """Mean per-seed metric of A minus B, with a hierarchical percentile interval and a two-sided bootstrap p:
    2 * min((#{d <= 0} + 1) / (m + 1), (#{d >= 0} + 1) / (m + 1)) over the m draws where both are defined."""
    y, a = _per_seed(y_true, probs_a, metric, "probs_a")
    _, b = _per_seed(y_true, probs_b, metric, "probs_b")
    if pair_seeds and len(a) != len(b):
        raise ValueError(f"pair_seeds needs the same seeds in both arms, got {len(a)} and {len(b)}")
    draws_a, draws_b = _draws(y, [a, b], n_boot, seed, pair_seeds)
    d = draws_a - draws_b
    diff, lo, hi = _interval(_full(y, a) - _full(y, b), d, alpha)
    ok = d[~np.isnan(d)]
    tail = min(np.sum(ok <= 0) + 1, np.sum(ok >= 0) + 1) / (ok.size + 1)
    p = float(np.clip(2 * tail, 0.0, 1.0)) if ok.size else float("nan")
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "p": p}


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error), in the mapping's own order of keys.

    Sorted ascending, the i-th smallest of m is multiplied by m - i (0-based), kept monotone and capped at 1;
    NaN p-values are left NaN and do not count towards m.
    """
    known = sorted((p, k) for k, p in p_values.items() if p == p)
    m, running, out = len(known), 0.0, {}
    for i, (p, key) in enumerate(known):
        running = max(running, min(1.0, (m - i) * p))
        out[key] = running
    return {k: out.get(k, float("nan")) for k in p_values}
