"""Temperature scaling: the fit recovers a known temperature, never worsens the validation NLL, keeps the ranking
exactly, and a stored temperature that is not finite and positive is refused."""
import math

import numpy as np
import pytest

from dsgkd.core.metrics import binary_metrics, curve_points
from dsgkd.core.temperature import T_BOUNDS, check_temperature, fit_temperature, nll, positive_prob


def _draw(n, t_true, seed):
    """Logits whose labels were drawn from softmax(logits / t_true): the NLL's minimum is near t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=(n, 2))
    y = (rng.random(n) < positive_prob(z, t_true)).astype(int)
    return z, y


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_the_fit_recovers_the_temperature_the_labels_were_drawn_at(t_true):
    z, y = _draw(20_000, t_true, seed=1)
    t = fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.06)
    for other in (t * 0.9, t * 1.1, 1.0):  # a minimum: no nearby temperature, nor none at all, does better
        assert nll(z, y, t) <= nll(z, y, other) + 1e-12


@pytest.mark.parametrize("t", [0.3, 3.0, 40.0])
def test_temperature_scaling_keeps_auroc_and_auprc_exactly(t):
    z, y = _draw(3_000, 1.7, seed=2)
    before, after = binary_metrics(y, positive_prob(z), 0.5), binary_metrics(y, positive_prob(z, t), 0.5)
    assert before["auroc"] == after["auroc"] and before["auprc"] == after["auprc"]
    assert before["ece"] != after["ece"]


def test_positive_prob_is_the_softmax_and_stays_finite_on_large_logits():
    z = np.array([[0.0, 0.0], [1.0, 3.0], [-800.0, 800.0], [800.0, -800.0]])
    p = positive_prob(z, 2.0)
    assert p[0] == 0.5 and p[1] == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert (p[2], p[3]) == (1.0, 0.0)


def test_a_single_class_or_separable_validation_split_gives_a_bounded_temperature():
    z, _ = _draw(200, 1.0, seed=3)
    assert fit_temperature(z, np.ones(200, dtype=int)) == 1.0
    y = (z[:, 1] > z[:, 0]).astype(int)  # separable: the NLL falls as T falls, down to the bound
    assert T_BOUNDS[0] <= fit_temperature(z, y) < 0.02


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "hot", None])
def test_a_stored_temperature_that_is_not_finite_and_positive_is_refused(value):
    with pytest.raises(ValueError, match="dsgkd.json: temperature"):
        check_temperature(value, "dsgkd.json")
    assert check_temperature("0.5", "x") == 0.5


def test_curve_points_put_the_operating_point_on_both_curves_and_bin_every_note():
    z, y = _draw(500, 1.0, seed=4)
    p = positive_prob(z)
    c = curve_points(y, p, 0.4)
    op = c["operating_point"]
    roc = set(zip(np.round(c["roc"]["fpr"], 12), np.round(c["roc"]["tpr"], 12)))
    pr = set(zip(np.round(c["pr"]["recall"], 12), np.round(c["pr"]["precision"], 12)))
    assert (round(op["fpr"], 12), round(op["tpr"], 12)) in roc
    assert (round(op["recall"], 12), round(op["precision"], 12)) in pr
    r = c["reliability"]
    assert sum(r["count"]) == 500 and all(0 <= v <= 1 for v in r["frac_positive"] + r["mean_prob"])
    ece = sum(n * abs(f - m) for n, f, m in zip(r["count"], r["frac_positive"], r["mean_prob"])) / 500
    assert ece == pytest.approx(binary_metrics(y, p, 0.4)["ece"])
    assert "roc" not in curve_points(np.ones(10), np.linspace(0, 1, 10), 0.5)  # one class: no ROC to draw
