"""Class weights on an imbalanced department: `train.class_weight` none vs balanced, same notes, seeds and recipe.

Notes drawn at a 10% emergency rate (train, validation and test alike), a KD-off student (the task loss is what the
weights change), the threshold chosen on validation by the run's rule in both arms. Prints per-seed and mean test
AUROC, AUPRC and F1 at the chosen threshold, with each arm's SD over the seeds: a difference smaller than the
spread is no finding.

    python benchmarks/class_weight.py [--seeds 0,1,2,3,4] [--train 1000 --val 300 --test 1000] [--epochs 4] [--lr 1e-3,3e-3]
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from dsgkd.config import RunConfig
from dsgkd.data.synthetic import generate_notes, write_table
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.train import run_train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--rate", type=float, default=0.1, help="share of positive (emergency) notes")
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--student", default="xlmr-tiny")
    ap.add_argument("--lr", default="3e-4,3e-3", help="ENCODER,HEAD learning rates (the tables chose 1e-3,3e-3 for "
                                                      "xlmr-tiny on validation)")
    a = ap.parse_args()
    lr_encoder, lr_head = (float(x) for x in a.lr.split(","))
    seeds = [int(s) for s in a.seeds.split(",")]
    rows: dict[str, list[dict]] = {"none": [], "balanced": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        paths = {}
        for split, n, seed in (("train", a.train, 500), ("val", a.val, 501), ("test", a.test, 502)):
            paths[split] = tmp / f"{split}.csv"
            write_table(generate_notes(n, seed=seed, positive_rate=a.rate), paths[split])
        base = RunConfig().with_overrides({
            "data.path": str(paths["train"]), "data.val_path": str(paths["val"]), "data.test_path": str(paths["test"]),
            "data.text_col": "ER_DHX", "data.label_col": "LABEL", "student.ref": a.student,
            "distill.alpha": 0.0, "distill.beta": 0.0, "distill.gamma": 0.0, "train.epochs": a.epochs,
            "train.batch_size": 32, "train.lr_encoder": lr_encoder, "train.lr_head": lr_head, "eval.n_bootstrap": 10})
        for seed in seeds:
            for weight in rows:
                cfg = base.with_overrides({"train.seed": seed, "train.class_weight": weight})
                m = run_train(resolve_run(cfg), tmp / f"{weight}-{seed}", log=lambda *_: None)["test"]
                rows[weight].append({"seed": seed, **{k: round(m[k]["value"], 4)
                                                       for k in ("auroc", "auprc", "f1")}})
    summary = {w: {k: {"mean": round(float(np.mean([r[k] for r in rs])), 4),
                       "sd": round(float(np.std([r[k] for r in rs], ddof=1)), 4) if len(rs) > 1 else None}
                   for k in ("auroc", "auprc", "f1")} for w, rs in rows.items()}
    print(json.dumps({"benchmark": "class_weight", "positive_rate": a.rate, "sizes": [a.train, a.val, a.test],
                      "epochs": a.epochs, "lr": a.lr, "student": a.student, "seeds": seeds, "per_seed": rows,
                      "summary": summary}))


if __name__ == "__main__":
    main()
