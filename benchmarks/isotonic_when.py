"""When would isotonic calibration beat temperature scaling? Measured on the tables' own test predictions.

A student's validation split is where its calibration is fitted (`dsgkd.core.temperature`): one parameter for
temperature scaling, a step function with up to one step per note for isotonic regression, which needs more notes
before it stops fitting noise. Here every trained row of the tables (`dsgkd table`: control, knowledge-free,
searched, paper; each seed's `predictions.csv`, 1,000 test notes) stands in for a student: its test notes are
split at random into a fitting part of N notes (the validation split a user would have) and the rest, on which
ECE, Brier and AUROC are scored. Temperature is refitted on the N notes' logits (log p / (1 − p), the shipped
temperature only rescales them); isotonic regression (scikit-learn, clipped to [0, 1]) is fitted on the same N
notes' temperature-scaled probabilities. Nothing is trained; prints JSON: per N, the mean over rows, seeds and
draws of each method's ECE and Brier, how often isotonic's ECE is lower, and isotonic's AUROC change (its steps
tie notes that temperature scaling keeps apart).

    python benchmarks/isotonic_when.py [--tables runs/tables] [--sizes 100,200,400,800] [--draws 20]
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from dsgkd.core.metrics import binary_metrics
from dsgkd.core.temperature import fit_temperature, positive_prob

ROWS = ("control", "knowledge_free", "searched", "paper")


def students(tables: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, labels, test probabilities) of every trained row and seed under `tables`."""
    found = []
    for pred in sorted(tables.glob("*/*__*/*/seed_*/predictions.csv")):
        if pred.parts[-3] in ROWS:
            frame = pd.read_csv(pred)
            found.append(("/".join(pred.parts[-5:-1]), frame["label"].to_numpy(), frame["prob"].to_numpy()))
    return found


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = binary_metrics(y, p, 0.5)
    return {"ece": m["ece"], "brier": m["brier"], "auroc": m["auroc"]}


def one_draw(y: np.ndarray, p: np.ndarray, n: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    order = rng.permutation(len(y))
    fit, rest = order[:n], order[n:]
    eps = 1e-7
    z = np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1 - eps))
    logits = np.stack([np.zeros_like(z), z], axis=1)
    t = fit_temperature(logits[fit], y[fit])
    p_t = positive_prob(logits, t)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p_t[fit], y[fit])
    return {"temperature": scores(y[rest], p_t[rest]), "isotonic": scores(y[rest], iso.predict(p_t[rest]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=Path, default=Path("runs/tables"))
    ap.add_argument("--sizes", default="100,200,400,800")
    ap.add_argument("--draws", type=int, default=20)
    a = ap.parse_args()
    found = students(a.tables)
    if not found:
        raise SystemExit(f"no trained rows' predictions.csv under {a.tables}")
    rng = np.random.default_rng(0)
    result = {"students": len(found), "test_notes": int(np.median([len(y) for _, y, _ in found])), "draws": a.draws,
              "by_fit_size": {}}
    for n in (int(s) for s in a.sizes.split(",")):
        runs = [one_draw(y, p, n, rng) for _, y, p in found for _ in range(a.draws)]
        mean = {method: {k: round(float(np.mean([r[method][k] for r in runs])), 4) for k in ("ece", "brier")}
                for method in ("temperature", "isotonic")}
        result["by_fit_size"][n] = {
            **mean, "isotonic_ece_lower_in": round(float(np.mean([r["isotonic"]["ece"] < r["temperature"]["ece"]
                                                                  for r in runs])), 3),
            "isotonic_auroc_change": round(float(np.mean([r["isotonic"]["auroc"] - r["temperature"]["auroc"]
                                                          for r in runs])), 4)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
