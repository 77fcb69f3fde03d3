"""A trained run scored on another test split without training it again.

Nothing a run trains on or chooses with reads its test split: the best epoch, the temperature and the threshold
all come from validation (`pipeline.train`). A run whose config differs from a new one only in `data.test_path`
(and whose training and validation notes are the same bytes) is therefore the very run the new config would
train, and its saved student, scored on the new test notes at its own temperature and threshold, reports what a
fresh run would. A table's next design (a new test split drawn after a change to its analysis, one of its
searches or its floor) then retrains only what the change touches (`experiments.table_reuse`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from dsgkd.config import RunConfig
from dsgkd.core.metrics import evaluate_with_ci
from dsgkd.core.temperature import positive_prob
from dsgkd.pipeline.card import render_card
from dsgkd.pipeline.train import split_calibration, split_logits
from dsgkd.storage import atomic_write_text

RESCORED = "rescored"  # metrics.json's record of the run a rescored one was trained as


def rescore_run(cfg: RunConfig, source: Path, out: Path) -> dict:
    """Write into `out` (a staging directory) the run `source` (complete: config.yaml, metrics.json, student/)
    as if trained under `cfg`: its student and validation record as they are, the test metrics, predictions and
    test calibration on `cfg`'s test split, the card re-rendered from them. The caller has checked that `cfg`
    trains what `source` trained (`table_reuse.Reuse.source`)."""
    from dsgkd.data.emr import load_splits
    from dsgkd.pipeline.resolve import resolve_run
    from dsgkd.pipeline.serve import load_student

    source, out = Path(source), Path(out)
    old = json.loads((source / "metrics.json").read_text(encoding="utf-8"))
    splits = load_splits(cfg.data)
    student = load_student(source / "student")
    y, logits = split_logits(student.model, student.tokenizer, splits.test, cfg)
    t, threshold = float(old["temperature"]), float(old["threshold"])
    p = positive_prob(logits, t)
    metrics = {**old,
               "test": evaluate_with_ci(y, p, threshold, n_boot=cfg.eval.n_bootstrap, seed=cfg.train.seed),
               "calibration": {**old["calibration"], "test": split_calibration(y, logits, t)},
               "data": {**old["data"], "fingerprint": splits.fingerprint, "n_test": len(splits.test),
                        "dropped_empty": splits.dropped_empty},
               RESCORED: {"from": str(source.resolve()), "source_data_fingerprint": old["data"]["fingerprint"],
                          "trained_in": old.get(RESCORED, {}).get("trained_in", str(source.resolve()))}}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "student", out / "student", dirs_exist_ok=True)
    cfg.to_yaml(out / "config.yaml")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    pd.DataFrame({"label": y, "prob": p}).to_csv(out / "predictions.csv", index_label="row")
    atomic_write_text(out / "student" / "README.md", render_card(cfg, metrics, resolve_run(cfg).layer_pairs))
    return metrics
