"""The non-neural reference row, and the demo's verdict that reads the final table against it."""
import numpy as np

from dsgkd.config import DataConfig
from dsgkd.data.emr import load_splits
from dsgkd.experiments.demo import verdict
from dsgkd.report.reference import C_GRID, ngram_reference


def test_ngram_reference_learns_the_synthetic_task_and_freezes_its_threshold_on_validation(tmp_path):
    from dsgkd.data.synthetic import generate_notes, write_table

    path = tmp_path / "notes.csv"
    write_table(generate_notes(1200, seed=3), path)
    splits = load_splits(DataConfig(path=str(path), text_col="ER_DHX", label_col="LABEL", group_col="PT_ID"))
    ref = ngram_reference(splits, n_boot=200)
    assert ref["C"] in C_GRID
    assert ref["test"]["auroc"]["value"] > 0.75  # a broken feature path or shuffled labels gives ~0.5
    assert ref["test"]["auroc"]["ci_low"] < ref["test"]["auroc"]["value"] < ref["test"]["auroc"]["ci_high"]
    assert 0 < ref["threshold"] < 1
    again = ngram_reference(splits, n_boot=200)
    assert np.isclose(again["test"]["auroc"]["value"], ref["test"]["auroc"]["value"])


def _summary(diff, low, high, dsgkd=0.60, control=0.58, p=0.01):
    step = 0.01 if diff > 0 else -0.01
    per_seed = {"dsgkd": [control + step, control + step, control - step], "control": [control] * 3}
    return {"seeds": [0, 1, 2], "test": {"dsgkd": {"auroc": {"mean": dsgkd}}, "control": {"auroc": {"mean": control}}},
            "auroc_dsgkd_minus_control": {"diff": diff, "ci_low": low, "ci_high": high, "p": p, "min_p": 0.25},
            "per_seed": per_seed}


def _ref(value):
    return {"test": {"auroc": {"value": value, "ci_low": value - 0.05, "ci_high": value + 0.05}}}


def test_verdict_says_no_effect_at_demo_size_and_names_the_gap_to_the_reference():
    text = verdict(_summary(-0.02, -0.05, 0.01, dsgkd=0.48, control=0.50, p=0.5), _ref(0.87))
    assert text.startswith("No effect claimed at demo size") and "[-0.0500, +0.0100]" in text
    assert "sign-flip p 0.500 over 3 seeds (the smallest p 3 seeds can give is 0.250)" in text
    assert "0.370 test AUROC below the character n-gram reference" in text


def test_verdict_claims_a_gain_only_when_the_seed_level_interval_excludes_zero():
    text = verdict(_summary(0.03, 0.01, 0.05), _ref(0.55))
    assert text.startswith("DSG-KD beat its KD-off control") and "in 2 of 3 seeds" in text
    assert "below the character n-gram" not in text
    assert verdict(_summary(-0.03, -0.05, -0.01), _ref(0.55)).startswith("DSG-KD scored below")
    # an interval that excludes 0 is not a claim while the seed-level test cannot reject
    assert verdict(_summary(0.03, 0.01, 0.05, p=0.25), _ref(0.55)).startswith("No effect claimed")
