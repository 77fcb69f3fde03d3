"""The search-luck A/A simulation against answers known by construction: with no config or interaction spread
every design holds the sign-flip test's size; a config's own quality fools the separate-search design and cancels
in the crossed ones; an interaction the searches select on fools the crossed mean, and demanding the effect in
both configs (the table's primary) keeps the false claims under the nominal rate."""
import numpy as np
import pytest

from dsgkd.core.search_luck import crossed_claim, false_positive_rate, simulate

KW = {"n_sims": 1000, "n_seeds": 10, "seed": 3}


def test_without_search_luck_every_design_holds_its_size():
    for design in ("separate", "crossed_mean", "crossed_both", "separate_per_seed"):
        assert false_positive_rate(design, **KW)["ci_low"] <= 0.05


def test_config_quality_fools_separate_searches_and_cancels_when_crossed():
    assert false_positive_rate("separate", sd_config=0.02, **KW)["rate"] > 0.4
    assert false_positive_rate("crossed_mean", sd_config=0.02, **KW)["ci_low"] <= 0.05
    # with no interaction and no run noise, a config's quality cancels exactly, seed by seed
    d = simulate(sd_config=0.05, sd_run=0.0, n_sims=5, n_seeds=4)
    np.testing.assert_allclose(d["within_searched"], 0.0, atol=1e-12)
    np.testing.assert_allclose(d["within_control"], 0.0, atol=1e-12)


def test_a_selected_interaction_fools_the_crossed_mean_but_not_the_claim_in_both_configs():
    luck = {"sd_config": 0.02, "sd_interaction": 0.005, **KW}
    assert false_positive_rate("crossed_mean", **luck)["rate"] > 0.1
    assert false_positive_rate("crossed_both", **luck)["ci_high"] < 0.05
    assert false_positive_rate("crossed_both", effect=0.03, **luck)["rate"] > 0.8  # and it still sees +0.03
    with pytest.raises(ValueError, match="design"):
        false_positive_rate("pooled", n_sims=1, n_seeds=2)


def test_a_search_pair_per_seed_holds_the_size_whatever_the_luck():
    assert false_positive_rate("separate_per_seed", sd_config=0.04, sd_interaction=0.02, **KW)["ci_low"] <= 0.05


def test_the_claim_needs_both_configs_in_the_same_direction():
    up, down = np.full(8, 0.02) + np.linspace(0, 0.01, 8), -np.full(8, 0.02) - np.linspace(0, 0.01, 8)
    both = crossed_claim(up, up * 1.5)
    assert both["p"] == pytest.approx(2 / 2 ** 8) and both["diff_within"][0] > 0
    assert crossed_claim(up, down)["p"] == 1.0
    weak = crossed_claim(up, np.array([0.03, -0.01] * 4))  # same direction, but the second config alone cannot say
    assert weak["p"] == max(weak["p_within"]) == weak["p_within"][1] > 0.05
