"""Temperature scaling: the one-parameter calibration fitted on validation after the best epoch is chosen.

A binary classifier's P(positive) is softmax(logits / T)[1]. Dividing every logit by the same T > 0 keeps the
order of the notes (AUROC and AUPRC do not move), but moves the probabilities towards 0.5 (T > 1, an
over-confident model) or away from it (T < 1), so the probability a reader sees as a risk matches how often
such notes are positive. T is fitted by minimising the validation negative log-likelihood; the NLL is convex in
1/T, so a bounded scalar search over log T finds its single minimum (Guo et al. 2017, "On Calibration of
Modern Neural Networks"). Numpy and scipy only: the fit runs on logits already computed.
"""
from __future__ import annotations

import math

import numpy as np

# T outside [1/100, 100] means the validation split is separable or degenerate, not that the model needs it
T_BOUNDS = (0.01, 100.0)


def positive_prob(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T)[:, 1] for (n, 2) logits, in float64 (a stable log-sum-exp)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(axis=1)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the 0/1 labels under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=1, keepdims=True)
    log_norm = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(labels, dtype=int)]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the validation NLL, within `T_BOUNDS`; 1.0 when validation has a single class (any
    T > 0 then 'explains' it by pushing every probability to 0 or 1, which says nothing about new notes)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0 or len(set(labels.tolist())) < 2:
        return 1.0
    lo, hi = (math.log(b) for b in T_BOUNDS)
    res = minimize_scalar(lambda log_t: nll(logits, labels, math.exp(log_t)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-7})
    return float(math.exp(res.x))


def check_temperature(value, where: str) -> float:
    """A stored temperature as a float, or ValueError naming `where` when it is not finite and positive."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: temperature {value!r} is not a number") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"{where}: temperature {value!r} must be a finite number > 0")
    return t
