"""Test ECE and Brier before and after temperature scaling, over seeds, on the default world's benchmark files.

Each seed trains `dsgkd train` (kmbert-tiny -> kobert-tiny, the paper's distillation weights) on the default
world's train / val / test / transfer files (the demo's sizes for --notes), whose temperature is fitted on
validation after the best epoch (`dsgkd.core.temperature`). Reported per seed from metrics.json's
`calibration`, with the mean and std over seeds, and the test AUROC before and after, which must be equal
(temperature scaling keeps the order; checked exactly on the student's raw and calibrated probabilities).

    python benchmarks/calibration_ece.py                                  # full: 1,200 notes, 5 seeds, 3 epochs
    python benchmarks/calibration_ece.py --notes 300 --epochs 2           # small
    python benchmarks/calibration_ece.py --notes 2400 --epochs 6 --lr 5e-4,3e-3   # students that learn
"""
import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from dsgkd.cli import main as dsgkd
from dsgkd.core.metrics import binary_metrics, mean_std
from dsgkd.data.benchmark import write_benchmark
from dsgkd.experiments.demo import demo_sizes
from dsgkd.pipeline.serve import load_student, predict_probs


def one_seed(data: dict, seed: int, epochs: int, out: Path, lrs: tuple[str, str] | None = None) -> dict:
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds nothing but the JSON
        code = dsgkd(["train", "--data", data["train"], "--val", data["val"], "--test", data["test"],
                      "--transfer-data", data["transfer"], "--text-col", "ER_DHX", "--label-col", "LABEL", "--teacher",
                      "kmbert-tiny", "--student", "kobert-tiny", "--epochs", str(epochs), "--seed", str(seed),
                      "--n-bootstrap", "10", "--out", str(out),
                      *(["--lr-encoder", lrs[0], "--lr-head", lrs[1]] if lrs else [])])
    if code:
        raise SystemExit(f"dsgkd train exited {code} (seed {seed})")
    m = json.loads((out / "metrics.json").read_text())
    test = pd.read_csv(data["test"])
    student = load_student(out)
    calibrated = predict_probs(student, list(test["ER_DHX"]))
    student.meta["temperature"] = 1.0
    raw = predict_probs(student, list(test["ER_DHX"]))
    y = test["LABEL"].to_numpy()
    before, after = binary_metrics(y, raw, 0.5)["auroc"], binary_metrics(y, calibrated, 0.5)["auroc"]
    c = m["calibration"]["test"]
    return {"seed": seed, "temperature": m["temperature"], "ece_before": c["ece_before"], "ece_after": c["ece_after"],
            "brier_before": c["brier_before"], "brier_after": c["brier_after"], "auroc_before": before,
            "auroc_after": after, "auroc_equal": before == after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=1200, help="labelled notes (demo sizes: train half, val a sixth, "
                    "test a third; as many transfer notes as training notes)")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", help="ENCODER,HEAD learning rates (default: the config's); students at chance make "
                                 "no calibration reading, e.g. 5e-4,3e-3 learns at 2,400 notes and 6 epochs")
    args = ap.parse_args()
    lrs = tuple(args.lr.split(",")) if args.lr else None
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = write_benchmark(Path(tmp) / "data", demo_sizes(args.notes))
        runs = [one_seed(data, s, args.epochs, Path(tmp) / f"seed_{s}", lrs) for s in seeds]
    summary = {k: dict(zip(("mean", "std"), mean_std([r[k] for r in runs])))
               for k in ("temperature", "ece_before", "ece_after", "brier_before", "brier_after")}
    summary["ece_lower_after_in"] = int(np.sum([r["ece_after"] < r["ece_before"] for r in runs]))
    print(json.dumps({"notes": demo_sizes(args.notes), "epochs": args.epochs, "lr": args.lr, "seeds": seeds,
                      "runs": runs, "test_auroc": dict(zip(("mean", "std"), mean_std([r["auroc_before"] for r in runs]))),
                      "summary": summary, "auroc_equal_in_every_seed": all(r["auroc_equal"] for r in runs)}, indent=1))


if __name__ == "__main__":
    main()
