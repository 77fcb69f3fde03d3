"""The sign-flip test against hand counts and a brute-force enumeration, the A/A simulator against tests whose
false-positive rate is known, and the declared power against a simulation at the MDD."""
import itertools

import numpy as np
import pytest
from scipy import stats as sps

from dsgkd.core.calibration import (bootstrap_p, min_detectable_difference, primary_comparison, seeds_for,
                                    sign_flip_p, sign_flip_power, sign_flip_test, simulate_aa, simulate_tables)


def _brute(d):
    """The definition: the share of all 2^n sign vectors whose |signed sum| reaches the observed one."""
    t = abs(sum(d))
    return np.mean([abs(np.dot(s, d)) >= t - 1e-12 for s in itertools.product((1, -1), repeat=len(d))])


@pytest.mark.parametrize("diffs, p", [([1, 1, 1, 1, 1], 2 / 32), ([0, 0, 0, 0], 1.0), ([1, 2, 3], 2 / 8),
                                      ([3, -1, 2], 4 / 8), ([1, -1], 1.0), ([0.5], 1.0)])
def test_sign_flip_p_matches_hand_counts(diffs, p):
    # [3, -1, 2]: of ±3±1±2 the sums 6, 4, -4, -6 reach |4|; [1, -1]: the observed sum 0 is reached by all
    assert sign_flip_test(diffs)["p"] == pytest.approx(p)


def test_sign_flip_matches_brute_force_and_scipy_and_its_monte_carlo():
    rng = np.random.default_rng(3)
    for n in (6, 9, 11):
        d = rng.normal(0.4, 1.0, n)
        exact = sign_flip_test(d)
        assert exact["exact"] and exact["p"] == pytest.approx(_brute(d))
        ref = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf)
        assert exact["p"] == pytest.approx(ref.pvalue)
        mc = sign_flip_test(d, exact_max=3, n_perm=40_000, seed=1)
        assert not mc["exact"] and abs(mc["p"] - exact["p"]) < 4 * np.sqrt(exact["p"] / 40_000) + 1e-4


def test_sign_flip_ties_in_rounded_differences_count_as_extreme():
    """AUROC differences are sums of many rounded terms: a flip that reaches the observed |sum| only up to float
    error must still count, or p comes out too small."""
    d = [0.1, 0.2, 0.3, -0.6 + 0.3]  # 0.1 + 0.2 − 0.3 sits 5.6e-17 off 0
    assert sign_flip_test(d)["p"] == pytest.approx(_brute(np.array(d)))


def test_min_p_says_five_seeds_can_never_reach_five_percent():
    assert sign_flip_test(np.ones(5))["min_p"] == 0.0625 and sign_flip_test(np.arange(1, 6))["p"] >= 0.0625
    assert sign_flip_test(np.ones(6))["min_p"] == pytest.approx(1 / 32)
    assert sign_flip_test(np.ones(6))["p"] == pytest.approx(1 / 32)  # reached: all six of one sign
    assert sign_flip_test(np.ones(30), n_perm=999)["min_p"] == pytest.approx(1 / 1000)  # Monte-Carlo's floor
    assert not primary_comparison([0.80] * 5, [0.70] * 5)["can_reject"]
    assert primary_comparison(np.full(6, 0.8), np.full(6, 0.7))["can_reject"]


def test_sign_flip_interval_is_the_paired_t_interval():
    d = np.array([0.01, 0.03, -0.005, 0.02, 0.012, 0.018])
    r = sign_flip_test(d)
    ref = sps.ttest_1samp(d, 0).confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ref.low, ref.high))


def test_aa_simulator_knows_an_always_rejecting_test():
    r = simulate_aa(lambda table: 0.0, n_seeds=3, n_notes=200, n_sims=50)
    assert r["fpr"] == 1.0 and r["rejections"] == 50 and r["ci_high"] == 1.0


def test_aa_simulator_finds_alpha_for_a_uniform_p():
    rng = np.random.default_rng(11)
    r = simulate_aa(lambda table: rng.random(), n_seeds=3, n_notes=100, n_sims=2000, alpha=0.05)
    assert r["ci_low"] <= 0.05 <= r["ci_high"] and r["ci_high"] - r["ci_low"] < 0.025


def test_sign_flip_holds_its_size_on_null_tables():
    r = simulate_aa(sign_flip_p, n_seeds=10, n_notes=1000, n_sims=2000, seed_sd=0.012)
    assert r["fpr"] <= 0.07 and r["ci_low"] <= 0.05
    assert 0.010 < r["per_seed_auroc_sd"] < 0.020  # the table's observed range


def test_the_seed_note_bootstrap_fails_aa_at_five_seeds_when_seeds_dominate():
    """The finding the sign-flip test answers: five seeds resampled as if they were many, so p is too small."""
    r = simulate_aa({"bootstrap": bootstrap_p(n_boot=200), "sign_flip": sign_flip_p}, n_seeds=5, n_notes=300,
                    n_sims=200, seed_sd=0.02, note_noise=0.1, decimals=2)
    assert r["tests"]["bootstrap"]["ci_low"] > 0.05 and r["tests"]["sign_flip"]["fpr"] == 0.0


def test_seed_sd_is_on_the_auroc_scale_and_true_diff_moves_arm_a():
    tables = list(simulate_tables(n_seeds=200, n_notes=2000, seed_sd=0.015, note_noise=0.0, true_diff=0.02,
                                  n_sims=3))
    sd = np.mean([t.auroc_b.std(ddof=1) for t in tables])
    diff = np.mean([t.auroc_a.mean() - t.auroc_b.mean() for t in tables])
    assert sd == pytest.approx(0.015, rel=0.15) and diff == pytest.approx(0.02, abs=0.004)


def test_mdd_z_is_the_hand_formula_and_t_is_larger_and_falls_with_n():
    assert min_detectable_difference(0.013, 5, test="z") == pytest.approx((1.959964 + 0.841621) * 0.013 / 5 ** 0.5,
                                                                          rel=1e-5)
    mdd = [min_detectable_difference(0.013, n) for n in range(2, 40)]
    assert all(a > b for a, b in zip(mdd, mdd[1:]))
    z = [min_detectable_difference(0.013, n, test="z") for n in range(2, 40)]
    assert all(t > zz for t, zz in zip(mdd, z)) and mdd[-1] / z[-1] < 1.03
    # n = 10, sd = 1: the effect size G*Power / pwr.t.test report for a paired t at 80% power, 0.998
    assert min_detectable_difference(1.0, 10) == pytest.approx(0.998, abs=0.002)


def test_t_test_rejects_80_percent_at_its_mdd():
    n, sd = 8, 0.013
    mdd = min_detectable_difference(sd, n)
    d = np.random.default_rng(5).normal(mdd, sd, size=(8000, n))
    rate = np.mean(sps.ttest_1samp(d, 0, axis=1).pvalue < 0.05)
    assert abs(rate - 0.8) < 4 * np.sqrt(0.8 * 0.2 / 8000)
    shrunk = d - 0.2 * mdd  # a true difference of 0.8 MDD: the same check must see the lost power
    assert abs(np.mean(sps.ttest_1samp(shrunk, 0, axis=1).pvalue < 0.05) - 0.8) > 0.1


def test_sign_flip_mdd_is_infinite_below_six_seeds_and_seeds_for_reaches_the_target():
    assert min_detectable_difference(0.013, 5, test="sign_flip") == float("inf")
    n = seeds_for(0.02, 0.013)
    assert min_detectable_difference(0.013, n) <= 0.02 < min_detectable_difference(0.013, n - 1)
    assert seeds_for(0.02, 0.013, test="sign_flip") >= 6
    power = sign_flip_power(min_detectable_difference(0.013, 12), 0.013, 12, n_sims=1500)
    assert 0.7 < power["rate"] < 0.85  # at 12 seeds the sign-flip test nearly keeps the t-test's promise


def test_primary_comparison_reports_the_sign_flip_on_paired_seeds():
    a = np.array([0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.82])
    b = a - np.array([0.01, 0.02, 0.015, 0.005, 0.03, 0.012, 0.018])
    r = primary_comparison(a, b)
    assert r["test"] == "sign_flip" and r["n_seeds"] == 7 and r["diff"] == pytest.approx(0.0157, abs=1e-4)
    assert r["p"] == pytest.approx(2 / 128) and r["ci_low"] > 0 and r["mdd_sd"] == "observed"
    assert r["mdd_80"] == pytest.approx(min_detectable_difference(np.std(a - b, ddof=1), 7))
    planned = primary_comparison(a, b, sd_planned=0.013)
    assert planned["mdd_80"] == pytest.approx(min_detectable_difference(0.013, 7)) and planned["p"] == r["p"]
    with pytest.raises(ValueError, match="same seeds"):
        primary_comparison(a, b[:-1])
