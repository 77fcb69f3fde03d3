"""Wall time of a stand-in search with the shared teacher cache vs the teacher run live in every trial,
and the share of the search's wall time spent outside its trials (Ray start, set-up tasks, Tune's loop,
actor starts: `outside_trials_share`); multi-worker trials also report Ray Train's start-up per trial.

Both searches sample the same configs (same Optuna seed) and ASHA never stops a trial (grace period =
epochs), so the only difference is where the teacher signal comes from. The first search in a fresh
process also pays cold imports in every new Ray worker, so `--order` says which runs first. Prints JSON.

    python benchmarks/teacher_cache.py [--trials 4 --epochs 2 --notes 800 --order live,cached]
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from dsgkd.data.synthetic import generate_notes, write_table
from dsgkd.search.tune import search


def space_yaml(notes: Path, trials: int, epochs: int) -> dict:
    return {
        "base": {"data": {"path": str(notes), "text_col": "ER_DHX", "label_col": "LABEL"},
                 "train": {"epochs": epochs, "batch_size": 16, "max_length": 128, "patience": epochs}},
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
        "params": {"train.lr_encoder": {"type": "float", "low": 1.0e-4, "high": 1.0e-3, "log": True},
                   "distill.alpha": {"type": "float", "low": 0.1, "high": 1.0},
                   "distill.beta": {"type": "float", "low": 0.1, "high": 0.5}},
        "layer_maps": ["all", "uniform", "last_k:2"],
        "budget": {"num_samples": trials, "workers_per_trial": 1, "cpus_per_worker": 1},
        "asha": {"grace_period": epochs, "reduction_factor": 2},
        "metric": "val_auroc", "seed": 0, "include_paper_defaults": True, "include_control": False,
    }


def timed_search(space: Path, out: Path, cache: bool) -> dict:
    t0 = time.time()
    grid = search(space, out, teacher_cache=cache)
    wall = time.time() - t0
    trials = []
    for r in grid:
        df = r.metrics_dataframe
        startup = df["ray_startup_s"].iloc[0] if "ray_startup_s" in df else None  # multi-worker trials only
        trials.append({"ray_startup_s": startup, "trial_s": float(df["time_total_s"].iloc[-1]),
                       "error": r.error is not None})
    frame = pd.DataFrame(trials)
    # single-worker trials train inside the Tune trial and report no start-up of their own; what the search
    # spends outside its trials (Ray start, set-up tasks, Tune's loop, actor starts) is measured instead
    slots = min(os.cpu_count() or 1, len(frame))  # what `concurrency` allows one CPU per trial here
    startup = frame["ray_startup_s"].dropna()
    return {"wall_s": round(wall, 1), "trials": len(frame), "errors": int(frame["error"].sum()),
            "mean_trial_s": round(frame["trial_s"].mean(), 1),
            "outside_trials_share": round(1 - frame["trial_s"].sum() / (wall * slots), 3),
            "mean_ray_startup_s": round(startup.mean(), 1) if len(startup) else None,
            "ray_overhead_share": round(startup.sum() / frame["trial_s"].sum(), 3) if len(startup) else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--notes", type=int, default=800)
    ap.add_argument("--order", default="live,cached", help="which search runs first")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        write_table(generate_notes(a.notes, seed=0), d / "notes.csv")
        (d / "space.yaml").write_text(yaml.safe_dump(space_yaml(d / "notes.csv", a.trials, a.epochs)))
        runs = {mode: timed_search(d / "space.yaml", d / mode, cache=mode == "cached")
                for mode in a.order.split(",")}
    cached, live = runs["cached"], runs["live"]
    print(json.dumps({"benchmark": "teacher_cache", "notes": a.notes, "epochs": a.epochs, "order": a.order,
                      "with_cache": cached,
                      "without_cache": live, "with_over_without": round(cached["wall_s"] / live["wall_s"], 3),
                      "goal_with_over_without": 0.6, "goal_ray_overhead_share": 0.30}))


if __name__ == "__main__":
    main()
