"""The seeds × notes bootstrap against a slow loop over sklearn, and Holm against hand-computed values."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dsgkd.core.stats import holm, seed_note_ci, seed_note_comparison


def _arm(y, seeds, shift, spread, rng):
    """Seeds × notes probabilities: signal `shift`, seed-to-seed offsets of size `spread`."""
    out = []
    for _ in range(seeds):
        logit = shift * (2 * y - 1) * (1 + spread * rng.normal()) + rng.normal(0, 1.2, len(y))
        out.append(np.round(1 / (1 + np.exp(-logit)), 2))  # rounding makes ties on purpose
    return np.array(out)


@pytest.fixture
def arms():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    return y, _arm(y, 5, 1.0, 0.4, rng), _arm(y, 4, 0.8, 0.4, rng)


def _slow(y, arms_probs, n_boot, seed, pair_seeds):
    """The definition, one draw at a time: the same note rows for all arms, seeds drawn per arm."""
    notes = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    picks = [np.random.default_rng([seed, 1 if pair_seeds else 1 + a]).integers(0, len(p), size=(n_boot, len(p)))
             for a, p in enumerate(arms_probs)]
    out = np.full((len(arms_probs), n_boot), np.nan)
    for b in range(n_boot):
        rows = notes[b]
        if len(set(y[rows])) < 2:
            continue
        for a, p in enumerate(arms_probs):
            out[a, b] = np.mean([roc_auc_score(y[rows], p[s][rows]) for s in picks[a][b]])
    return out


def test_comparison_matches_a_slow_loop_over_sklearn(arms):
    y, a, b = arms
    got = seed_note_comparison(y, a, b, n_boot=300, seed=7)
    draws = _slow(y, [a, b], 300, 7, pair_seeds=False)
    d = draws[0] - draws[1]
    ok = d[~np.isnan(d)]
    assert got["diff"] == pytest.approx(np.mean([roc_auc_score(y, r) for r in a])
                                        - np.mean([roc_auc_score(y, r) for r in b]))
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(tuple(np.quantile(ok, [0.025, 0.975])))
    tail = min(np.sum(ok <= 0) + 1, np.sum(ok >= 0) + 1) / (ok.size + 1)
    assert got["p"] == pytest.approx(min(1.0, 2 * tail))


def test_single_arm_interval_matches_the_slow_loop(arms):
    y, a, _ = arms
    got = seed_note_ci(y, a, n_boot=200, seed=3)
    draws = _slow(y, [a], 200, 3, pair_seeds=False)[0]
    assert got["mean"] == pytest.approx(np.mean([roc_auc_score(y, r) for r in a]))
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(tuple(np.quantile(draws[~np.isnan(draws)],
                                                                              [0.025, 0.975])))


def test_seed_spread_widens_the_interval_beyond_the_note_level_one():
    """With notes fixed the interval comes from seeds alone; the hierarchical one is wider than either part."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    calm, noisy = _arm(y, 6, 1.0, 0.0, rng), _arm(y, 6, 1.0, 0.8, rng)
    width = {name: (lambda r: r["ci_high"] - r["ci_low"])(seed_note_ci(y, p, n_boot=500)) for name, p in
             (("calm", calm), ("noisy", noisy))}
    assert width["noisy"] > 1.3 * width["calm"]


def test_identical_arms_give_p_one_and_paired_seeds_need_equal_counts(arms):
    y, a, b = arms
    same = seed_note_comparison(y, a, a, n_boot=200, pair_seeds=True)
    assert same["diff"] == 0 and same["ci_low"] == same["ci_high"] == 0 and same["p"] == 1
    with pytest.raises(ValueError, match="same seeds in both arms"):
        seed_note_comparison(y, a, b, pair_seeds=True)
    with pytest.raises(ValueError, match=r"probs_b must be \(seeds, notes\)"):
        seed_note_comparison(y, a, b[0])
    with pytest.raises(ValueError, match="y_true has 120 rows but p has 119"):
        seed_note_ci(y, a[:, :-1])


def test_holm_by_hand():
    # sorted: b .01 ×3 = .03, c .02 ×2 = .04, a .04 ×1 = .04 (monotone), d NaN left out
    assert holm({"a": 0.04, "b": 0.01, "c": 0.02, "d": float("nan")}) == pytest.approx(
        {"a": 0.04, "b": 0.03, "c": 0.04, "d": float("nan")}, nan_ok=True)
    assert holm({"x": 0.3, "y": 0.6}) == {"x": 0.6, "y": 0.6}
    assert list(holm({"z": 0.5, "a": 0.1})) == ["z", "a"]
