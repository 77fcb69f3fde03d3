"""Binary classification evaluation for clinical triage (docs/architecture.md, "Data path").

The threshold is chosen on validation (`choose_threshold`) and then frozen for test, so test numbers
are not tuned on test. Test metrics come with percentile bootstrap CIs that resample rows *with*
replacement (resampling without replacement is a permutation and gives every draw the same value).

Conventions, used everywhere in this module:
- a row is flagged positive iff ``p >= threshold`` (the convention of sklearn's PR curve);
- a metric whose denominator is empty is NaN rather than an exception or a silent 0 (AUROC/AUPRC,
  recall or F1 with no positives, specificity with no negatives), so a bootstrap draw that lacks a
  class is skipped for that metric instead of biasing it; the one exception is precision with
  nothing flagged, which is 0 (the model found no one, as in sklearn);
- point estimates and bootstrap draws go through the same vectorised code (`_draw_stats`), so the
  interval is always about the number that is reported; the tests check that code against sklearn.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dsgkd.choices import THRESHOLD_RULES

RANK_METRICS = ("auroc", "auprc")
THRESHOLD_METRICS = ("f1", "precision", "recall", "specificity", "accuracy")
PROB_METRICS = ("brier", "ece")
METRICS = RANK_METRICS + THRESHOLD_METRICS + PROB_METRICS
_CHUNK_ELEMS = 4_000_000  # bootstrap index matrix is built in chunks of about this many entries
# THRESHOLD_RULES (`eval.threshold`): how the decision threshold is chosen on validation; fn(y, p, n_pos) -> threshold


def _as_1d(x, name: str) -> np.ndarray:
    """Lists, arrays and torch tensors (also on GPU or requiring grad) as a 1-D float array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    a = np.asarray(x, dtype=float)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _check(y_true, p) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and probabilities; catches the usual mistakes (logits, misaligned arrays)."""
    y, p = _as_1d(y_true, "y_true"), _as_1d(p, "p")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} rows but p has {len(p)}")
    if len(y) == 0:
        raise ValueError("cannot evaluate on zero rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must contain only 0/1 labels")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("p must be probabilities in [0, 1] (were logits passed? apply a sigmoid)")
    return y.astype(bool), p


def _draw_stats(y, p, idx, names, threshold, n_bins=10) -> dict[str, np.ndarray]:
    """Each metric in `names` on every row of `idx` (draws x n indices into y/p), as (draws,) arrays.

    A resample is the original rows with integer weights, so rank metrics need no per-draw sort:
    scores are grouped once by distinct value and each draw only counts positives/negatives per
    group (ties get half credit in AUROC, as in the Mann-Whitney statistic and sklearn).
    """
    c, n = idx.shape
    yb = y[idx]
    n_pos = yb.sum(1).astype(float)
    n_neg = n - n_pos
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if any(m in RANK_METRICS for m in names):
            _, g = np.unique(p, return_inverse=True)
            G = int(g.max()) + 1
            flat = (g[idx] + np.arange(c)[:, None] * G).ravel()
            tot = np.bincount(flat, minlength=c * G).reshape(c, G)
            pos = np.bincount(flat, weights=yb.ravel(), minlength=c * G).reshape(c, G)
            neg = tot - pos  # groups in ascending score order
            both = (n_pos > 0) & (n_neg > 0)
            below = np.cumsum(neg, 1) - neg
            auc = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
            out["auroc"] = np.where(both, auc, np.nan)
            tp, fp = np.cumsum(pos[:, ::-1], 1), np.cumsum(neg[:, ::-1], 1)  # descending thresholds
            prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
            out["auprc"] = np.where(both, (pos[:, ::-1] * prec).sum(1) / n_pos, np.nan)
        if any(m in THRESHOLD_METRICS for m in names):
            pred = (p >= threshold)[idx]
            tp = (yb & pred).sum(1).astype(float)
            fp = (~yb & pred).sum(1).astype(float)
            fn, tn = n_pos - tp, n_neg - fp
            out["precision"] = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
            out["recall"] = np.where(n_pos > 0, tp / n_pos, np.nan)
            out["specificity"] = np.where(n_neg > 0, tn / n_neg, np.nan)
            out["f1"] = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
            out["accuracy"] = (tp + tn) / n
        if "brier" in names:
            out["brier"] = ((p - y) ** 2)[idx].mean(1)
        if "ece" in names:
            # sum_b (n_b/N)|mean_y_b - mean_p_b| == sum_b |sum_y_b - sum_p_b| / N
            flat = (_bins(p, n_bins)[idx] + np.arange(c)[:, None] * n_bins).ravel()
            sy = np.bincount(flat, weights=yb.ravel(), minlength=c * n_bins)
            sp = np.bincount(flat, weights=p[idx].ravel(), minlength=c * n_bins)
            out["ece"] = np.abs(sy - sp).reshape(c, n_bins).sum(1) / n
    return {m: out[m] for m in names}


def _bins(p, n_bins):
    """Equal-width bins [k/n, (k+1)/n) over [0, 1]; p == 1 falls in the last bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.minimum((p * n_bins).astype(int), n_bins - 1)


def _resolve(metric, threshold) -> None:
    """Fail early, with the fix in the message, on names that cannot be computed."""
    if callable(metric):
        if threshold is not None:
            raise ValueError("threshold= is only for named metrics; bind it inside the callable")
        return
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRICS} or pass a callable")
    if metric in THRESHOLD_METRICS and threshold is None:
        raise ValueError(f"metric {metric!r} depends on the decision threshold: pass threshold= "
                         "(choose it on validation with choose_threshold)")


def _scorer(y, p, metric, threshold) -> Callable[[np.ndarray], np.ndarray]:
    """idx matrix -> per-draw values; callables get (y_true as 0/1 ints, p) per draw, NaN = skip."""
    if callable(metric):
        yi = y.astype(int)
        return lambda idx: np.array([float(metric(yi[r], p[r])) for r in idx])
    return lambda idx: _draw_stats(y, p, idx, (metric,), threshold)[metric]


def _bootstrap(n: int, n_boot: int, seed: int, fn) -> dict[str, np.ndarray]:
    """Run fn on with-replacement index rows (numpy Generator), chunked to bound memory."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ELEMS // n)
    parts = [fn(rng.integers(0, n, size=(min(step, n_boot - s), n))) for s in range(0, n_boot, step)]
    return {k: np.concatenate([d[k] for d in parts]) for k in parts[0]}


def _interval(point, draws, alpha) -> tuple[float, float, float]:
    """Percentile interval over the draws where the metric was defined (NaN draws skipped)."""
    ok = draws[~np.isnan(draws)]
    if ok.size == 0:
        return float(point), float("nan"), float("nan")
    lo, hi = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    return float(point), float(lo), float(hi)


def choose_threshold(y_true, p, how: str = "f1") -> float:
    """Decision threshold from validation scores by a `THRESHOLD_RULES` rule, to be frozen for test."""
    y, p = _check(y_true, p)
    n_pos = int(y.sum())
    if n_pos in (0, len(y)):
        raise ValueError("choose_threshold needs both classes in y_true")
    if THRESHOLD_RULES.get(how) is None:
        raise ValueError(f"how must be one of {THRESHOLD_RULES.choices_text()}, got {how!r}")
    return THRESHOLD_RULES[how].fn(y, p, n_pos)


@THRESHOLD_RULES.register("f1")
def best_f1(y: np.ndarray, p: np.ndarray, n_pos: int) -> float:
    """The score maximising F1 on validation (ties: the lowest, more sensitive threshold)."""
    from sklearn.metrics import precision_recall_curve  # sklearn costs seconds; the CLI reads names only

    prec, rec, thr = precision_recall_curve(y, p)
    prec, rec = prec[:-1], rec[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return float(thr[int(np.argmax(f1))])


@THRESHOLD_RULES.register("prevalence")
def prevalence(y: np.ndarray, p: np.ndarray, n_pos: int) -> float:
    """Flag as many notes as validation has positives: the n_pos-th largest score (the paper's choice)."""
    return float(np.sort(p)[::-1][n_pos - 1])


def binary_metrics(y_true, p, threshold: float) -> dict[str, float]:
    """All of METRICS at one threshold; auroc/auprc are NaN (not an error) with a single class."""
    y, p = _check(y_true, p)
    stats = _draw_stats(y, p, np.arange(len(y))[None], METRICS, float(threshold))
    return {k: float(v[0]) for k, v in stats.items()}


def evaluate_with_ci(y_true, p, threshold: float, *, n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> dict[str, dict[str, float]]:
    """{metric: {"value", "ci_low", "ci_high"}} for all of METRICS; one set of resampled rows
    serves every metric, so the intervals are mutually consistent (and the rows are those the seeds × notes
    bootstrap of `dsgkd.core.stats` draws for the same seed)."""
    y, p = _check(y_true, p)
    t = float(threshold)
    point = _draw_stats(y, p, np.arange(len(y))[None], METRICS, t)
    draws = _bootstrap(len(y), n_boot, seed, lambda idx: _draw_stats(y, p, idx, METRICS, t))
    ci = {m: _interval(point[m][0], draws[m], alpha) for m in METRICS}
    return {m: dict(zip(("value", "ci_low", "ci_high"), v)) for m, v in ci.items()}


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1) over seeds; std is 0 for a single value (not NaN)."""
    a = _as_1d(values, "values")
    if a.size == 0:
        raise ValueError("mean_std needs at least one value")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def curve_points(y_true, p, threshold: float, n_bins: int = 10) -> dict[str, dict[str, list[float]]]:
    """What `dsgkd evaluate --plots` draws, as JSON-able lists: the ROC and precision-recall curves (sklearn's),
    the reliability diagram over the same equal-width bins as ECE (empty bins left out), and the operating point
    at `threshold` (positive iff p >= threshold, as everywhere here)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = _check(y_true, p)
    out: dict[str, dict[str, list[float]]] = {}
    if 0 < y.sum() < len(y):
        fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)  # every threshold: the operating point is one
        prec, rec, _ = precision_recall_curve(y, p)
        out["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        out["pr"] = {"recall": rec.tolist(), "precision": prec.tolist()}
    b = _bins(p, n_bins)
    count = np.bincount(b, minlength=n_bins)
    keep = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=n_bins) / count
        frac = np.bincount(b, weights=y, minlength=n_bins) / count
    out["reliability"] = {"bin_low": (np.arange(n_bins)[keep] / n_bins).tolist(), "mean_prob": mean_p[keep].tolist(),
                          "frac_positive": frac[keep].tolist(), "count": count[keep].astype(int).tolist()}
    m = binary_metrics(y, p, threshold)
    out["operating_point"] = {"threshold": float(threshold), "fpr": 1 - m["specificity"], "tpr": m["recall"],
                              "precision": m["precision"], "recall": m["recall"]}
    return out
