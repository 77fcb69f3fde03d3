import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dsgkd.core.metrics import METRICS, binary_metrics, choose_threshold, evaluate_with_ci, mean_std
from dsgkd.core.stats import seed_note_ci, seed_note_comparison

# Hand example: sorted scores, 3 positives out of 6.
Y6 = [0, 0, 1, 0, 1, 1]
P6 = [0.1, 0.2, 0.3, 0.4, 0.7, 0.9]


def _data(n, seed=0, signal=1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1.5, n))))
    return y, np.round(p, 2)  # rounding creates ties on purpose


def test_auroc_auprc_brier_by_hand():
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5)
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert binary_metrics([0, 1], [0.5, 0.5], 0.5)["auroc"] == pytest.approx(0.5)  # tie = half
    assert binary_metrics([1, 0], [0.8, 0.3], 0.5)["brier"] == pytest.approx((0.2**2 + 0.3**2) / 2)


def test_ece_by_hand_on_six_points():
    p = [0.11, 0.13, 0.15, 0.62, 0.64, 0.66]
    y = [0, 0, 1, 1, 1, 0]
    # ten equal-width bins; bin [.1,.2): mean p .13, mean y 1/3; bin [.6,.7): mean p .64, mean y 2/3; each holds half
    assert binary_metrics(y, p, 0.5)["ece"] == pytest.approx(0.5 * (1 / 3 - 0.13) + 0.5 * (2 / 3 - 0.64))
    assert binary_metrics([1, 0], [1.0, 0.0], 0.5)["ece"] == 0.0  # p == 1 lands in the last bin


def test_threshold_metrics_by_hand():
    m = binary_metrics(Y6, P6, 0.3)  # flags .3 .4 .7 .9: tp 3, fp 1, tn 2, fn 0
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(1.0)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(6 / 7)
    assert set(m) == set(METRICS)
    assert binary_metrics(Y6, P6, 0.95)["precision"] == 0.0  # nothing flagged


def test_choose_threshold_f1_and_prevalence():
    # F1 per threshold: .9->.5, .7->.8, .4->.667, .3->.857, .2->.75, .1->.667
    assert choose_threshold(Y6, P6, "f1") == pytest.approx(0.3)
    t = choose_threshold(Y6, P6, "prevalence")
    assert t == pytest.approx(0.4)
    assert np.mean(np.asarray(P6) >= t) == pytest.approx(np.mean(Y6))
    with pytest.raises(ValueError):
        choose_threshold([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError):
        choose_threshold(Y6, P6, "youden")


def test_vectorised_matches_sklearn_on_resamples():
    y, p = _data(300, seed=1)
    rng = np.random.default_rng(5)
    for _ in range(5):
        i = rng.integers(0, len(y), len(y))
        yi, pi = y[i], p[i]
        m = binary_metrics(yi, pi, 0.5)
        pred = pi >= 0.5
        assert m["auroc"] == pytest.approx(skm.roc_auc_score(yi, pi))
        assert m["auprc"] == pytest.approx(skm.average_precision_score(yi, pi))
        assert m["f1"] == pytest.approx(skm.f1_score(yi, pred))
        assert m["precision"] == pytest.approx(skm.precision_score(yi, pred))
        assert m["recall"] == pytest.approx(skm.recall_score(yi, pred))
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(yi, pred))
        assert m["brier"] == pytest.approx(skm.brier_score_loss(yi, pi))
    # the F1-optimal threshold really is optimal among all candidate thresholds
    t = choose_threshold(y, p)
    assert binary_metrics(y, p, t)["f1"] >= max(skm.f1_score(y, p >= c) for c in np.unique(p)) - 1e-12


def test_single_class_gives_nan_not_exception():
    m = binary_metrics([1, 1, 1], [0.2, 0.5, 0.9], 0.5)
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"]) and math.isnan(m["specificity"])
    assert m["recall"] == pytest.approx(2 / 3)
    auroc = evaluate_with_ci([0, 0, 0], [0.1, 0.2, 0.3], 0.5, n_boot=50)["auroc"]
    assert math.isnan(auroc["value"]) and math.isnan(auroc["ci_low"]) and math.isnan(auroc["ci_high"])


def test_single_class_draws_are_skipped():
    y, p = [0, 0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.9]
    v, lo, hi = evaluate_with_ci(y, p, 0.5, n_boot=300)["auroc"].values()
    assert all(math.isfinite(x) for x in (v, lo, hi)) and lo <= v <= hi


def test_ci_contains_point_and_shrinks_with_more_data():
    widths = []
    for n in (200, 5000):
        y, p = _data(n, seed=2)
        v, lo, hi = evaluate_with_ci(y, p, 0.5, n_boot=400)["auroc"].values()
        assert lo <= v <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3


def test_bootstrap_resamples_with_replacement():
    # without replacement every draw is a permutation: Brier would have zero-width CI
    y, p = _data(100, seed=3)
    v, lo, hi = evaluate_with_ci(y, p, 0.5, n_boot=200)["brier"].values()
    assert hi - lo > 1e-3
    # a draw of distinct scores shows duplicates: ~63% of rows are unique on average (one seed: the note level)
    uniq = seed_note_ci(np.zeros(100), [np.arange(100) / 100], lambda y, q: len(np.unique(q)), n_boot=50)
    assert 50 < uniq["ci_low"] <= uniq["ci_high"] < 80 and uniq["mean"] == 100


def test_threshold_metric_needs_threshold_and_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="threshold"):
        seed_note_ci(Y6, [P6], "f1")
    with pytest.raises(ValueError, match="unknown metric"):
        seed_note_ci(Y6, [P6], "mcc")
    with pytest.raises(ValueError, match="logits"):
        binary_metrics([0, 1], [-2.0, 3.0], 0.5)
    with pytest.raises(ValueError):
        binary_metrics([0, 1, 1], [0.2, 0.3], 0.5)
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.2, 0.3], 0.5)
    with pytest.raises(ValueError, match="threshold"):
        seed_note_comparison(Y6, [P6], [P6], "recall")


def test_accepts_lists_arrays_and_tensors():
    a = binary_metrics(Y6, P6, 0.3)
    b = binary_metrics(torch.tensor(Y6), torch.tensor(P6, requires_grad=True), 0.3)
    c = binary_metrics(np.array(Y6, dtype=bool), np.array(P6, dtype=np.float32)[:, None], 0.3)
    assert a == pytest.approx(b)  # torch.tensor of floats is float32
    assert a == pytest.approx(c)


def test_evaluate_with_ci_matches_point_metrics_and_the_seed_note_interval():
    y, p = _data(400, seed=4)
    res = evaluate_with_ci(y, p, 0.5, n_boot=300, seed=7)
    point = binary_metrics(y, p, 0.5)
    assert set(res) == set(METRICS)
    for k, r in res.items():
        assert r["value"] == pytest.approx(point[k])
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
    # same seed -> same resampled rows as the seeds x notes bootstrap of one seed (`dsgkd table`'s interval)
    one_seed = seed_note_ci(y, [p], "auroc", n_boot=300, seed=7)
    assert (one_seed["mean"], one_seed["ci_low"], one_seed["ci_high"]) == pytest.approx(
        (res["auroc"]["value"], res["auroc"]["ci_low"], res["auroc"]["ci_high"]))


def test_paired_identical_models():
    y, p = _data(300, seed=5)
    r = seed_note_comparison(y, [p], [p.copy()], n_boot=300)
    assert r["diff"] == 0.0 and r["ci_low"] == 0.0 and r["ci_high"] == 0.0
    assert r["p"] == pytest.approx(1.0)


def test_paired_clearly_better_model():
    y, good = _data(400, seed=6, signal=2.5)
    _, weak = _data(400, seed=6, signal=0.2)
    r = seed_note_comparison(y, [good], [weak], "auroc", n_boot=500)
    assert r["diff"] > 0 and r["ci_low"] > 0 and r["p"] < 0.05
    assert r["p"] >= 2 / 501  # +1 smoothing: never exactly 0

    def f1(y, q):  # a threshold metric, bound to its threshold
        return skm.f1_score(y, q >= 0.5)

    r = seed_note_comparison(y, [good], [weak], f1, n_boot=300)
    assert r["diff"] > 0 and r["p"] < 0.05
    # reversed order flips the sign, same p
    r2 = seed_note_comparison(y, [weak], [good], f1, n_boot=300)
    assert r2["diff"] == pytest.approx(-r["diff"]) and r2["p"] == pytest.approx(r["p"])


def test_same_seed_reproducible():
    y, p = _data(200, seed=8)
    assert evaluate_with_ci(y, p, 0.5, n_boot=200, seed=3) == evaluate_with_ci(y, p, 0.5, n_boot=200, seed=3)
    assert evaluate_with_ci(y, p, 0.5, n_boot=200, seed=3) != evaluate_with_ci(y, p, 0.5, n_boot=200, seed=4)
    _, q = _data(200, seed=9)
    assert seed_note_comparison(y, [p], [q], seed=1, n_boot=200) == seed_note_comparison(y, [p], [q], seed=1,
                                                                                          n_boot=200)


def test_mean_std():
    assert mean_std([0.7]) == (0.7, 0.0)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)  # ddof=1
    with pytest.raises(ValueError):
        mean_std([])
