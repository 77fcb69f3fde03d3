"""The paper table's rows and statistics, without training: row configs differ from each other only where
the row says they do, and the summary's p-values and verdict follow the predictions it is given."""
import json

import numpy as np
import pandas as pd
import pytest

from dsgkd.config import RunConfig
from dsgkd.metrics import evaluate_with_ci
from dsgkd.experiments.paper_table import ROWS, render, row_configs, summarise_pair, verdict


@pytest.mark.parametrize("teacher, student, paper_map", [("kmbert-tiny", "xlmr-tiny", "all"),
                                                         ("biobert-tiny", "kobert-tiny", "uniform")])
def test_rows_differ_only_where_they_should(teacher, student, paper_map):
    base = RunConfig().with_overrides({"teacher.ref": teacher, "student.ref": student, "teacher.finetune": True,
                                       "data.transfer_path": "t.csv", "train.epochs": 6})
    searched = base.with_overrides({"distill.alpha": 0.3, "distill.gamma": 1.5, "distill.beta": 0.0,
                                    "distill.hidden_loss": "relational", "distill.layer_map": "last_k:2"})
    rows = row_configs(base, searched)
    paper, control = rows["paper"].distill, rows["control"].distill
    assert (paper.alpha, paper.beta, paper.gamma, paper.layer_map, paper.hidden_loss, paper.selector) == \
        (0.6, 0.2, 0.0, paper_map, "mse", "latin")
    assert not rows["paper"].teacher.finetune and rows["paper"].data.transfer_path is None
    assert not control.kd_on and rows["control"].data.transfer_path is None
    assert rows["knowledge-free"] == searched.with_overrides({"teacher.random_init": True})
    assert all(cfg.train == base.train for cfg in rows.values())  # one training recipe for every row


def _fake_runs(tmp_path, quality: dict[str, float], seeds=(0, 1, 2), n=400):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    for row in ROWS:
        for s in seeds:
            d = tmp_path / row / f"seed_{s}"
            d.mkdir(parents=True)
            p = 1 / (1 + np.exp(-(quality[row] * (2 * y - 1) + rng.normal(0, 1, n))))
            pd.DataFrame({"label": y, "prob": p}).to_csv(d / "predictions.csv", index_label="row")
            (d / "metrics.json").write_text(json.dumps({"test": evaluate_with_ci(y, p, 0.5, n_boot=50)}))


def test_summary_finds_a_real_gain_and_not_a_tie(tmp_path):
    _fake_runs(tmp_path, {"control": 0.3, "teacher": 0.5, "random teacher": 0.2, "paper": 0.3, "searched": 1.0,
                          "knowledge-free": 0.3})
    s = summarise_pair(tmp_path, [0, 1, 2], n_boot=500)
    assert s["tests"]["searched vs control"]["p_value"] < 0.01 and verdict(s)["goal"]
    assert s["tests"]["paper vs control"]["p_value"] > 0.05
    assert set(s["rows"]) == set(ROWS) and len(s["rows"]["searched"]["auroc_per_seed"]) == 3
    text = render({"a>b": {**s, "searched": "alpha 0.3"}},
                  {"command": "dsgkd table", "seconds": 60, "machine": "m", "date": "d", "seeds": [0, 1, 2],
                   "sizes": {"train": 1, "val": 1, "test": 1, "transfer": 1}, "trials": 3})
    assert "met for 1 of 1 pairs" in text and "| searched vs control |" in text


def test_summary_does_not_call_a_knowledge_free_tie_a_win(tmp_path):
    _fake_runs(tmp_path, {"control": 0.3, "teacher": 0.5, "random teacher": 0.5, "paper": 0.3, "searched": 1.0,
                          "knowledge-free": 1.2})
    v = verdict(summarise_pair(tmp_path, [0, 1, 2], n_boot=200))
    assert v["control"] and not v["knowledge-free"] and not v["goal"]


def test_a_higher_seed_mean_with_a_lower_ensemble_is_not_a_win():
    tie = {"tests": {"searched vs control": {"diff": 0.06, "p_value": 0.002},
                     "searched vs knowledge-free": {"diff": -0.0035, "p_value": 0.026}},
           "rows": {"searched": {"auroc": {"mean": 0.6231}}, "control": {"auroc": {"mean": 0.57}},
                    "knowledge-free": {"auroc": {"mean": 0.6218}}}}
    assert verdict(tie) == {"control": True, "knowledge-free": False, "knowledge-free, p < 0.05": False,
                            "goal": False}
