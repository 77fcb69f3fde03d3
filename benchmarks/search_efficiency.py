"""Search efficiency on the embedded benchmark: the best validation AUROC found against trials and against
wall time, for TPE + ASHA (the shipped default) and for random search without early stopping, at an equal
trial budget, over several search seeds. Prints one JSON object (the searches' own output goes to stderr).

Data: the embedded benchmark as `dsgkd demo` writes it (`write_benchmark` with `demo_sizes(--notes)`: train
notes without the held-out terms, val, test, unlabelled transfer notes; 1,200 labelled notes as the demo) and
the stand-ins the demo uses. Space: search_spaces/demo.yaml with
`train.epochs` = --epochs and `budget.num_samples` = --trials; the arms differ only in `sampler` (tpe /
random) and `asha.enabled`, and both use the space's `seed` = the search seed. Pairs, params, layer maps,
concurrency (the cluster's CPUs: 2 here) and training seed are the same. Both arms evaluate the paper's
defaults first (`include_paper_defaults`, the shipped behaviour): one identical trial at the head of both
arms, which costs each arm the same, gives TPE its first observation and random search nothing it uses, and
makes trial 1 the same in both arms (its best-so-far is not a sampler difference).

Optuna's TPE draws its first `n_startup_trials` (10) trials with a RandomSampler of the same seed, so with
the same search seed both arms sample the same configs for the first 10 trials (by sampling order; start
order may swap concurrent trials): a paired design in which those trials differ only by ASHA's stops, and
TPE's model picks from trial 11 on. Hence the default budget of 16 trials; a budget of 10 or fewer (the demo
has 6) compares ASHA against no early stopping on random search, not TPE against random.

Per search: each trial's start order, the wall time (since the search was called, teacher cache and Ray
set-up included) when it finished, its best val AUROC and the epochs it ran; best-so-far by trial index
(by start order) and by wall time (over every epoch report). Per arm: mean and sd over seeds of the final
best, of the best after k trials, of the best at the same wall-time checkpoints (fractions of the shortest
search of all), of wall time and of epochs trained. Searches alternate which arm runs first per seed, so
neither arm always pays the first search's cold imports. Trial-indexed figures do not depend on machine
load; wall times do.

    python benchmarks/search_efficiency.py [--seeds 3 --trials 16 --epochs 3 --notes 1200]
    python benchmarks/search_efficiency.py --quick     # 1 seed, 2 trials, 1 epoch: the test's size
"""
import argparse
import contextlib
import inspect
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

from dsgkd.constants import SEARCH_SPACES
from dsgkd.data.benchmark import write_benchmark
from dsgkd.experiments.demo import demo_sizes
from dsgkd.report.run_model import load_run
from dsgkd.search.local_ray import local_ray
from dsgkd.models.shape import model_depth
from dsgkd.search.space import load_space, resolve_pairs, seeded_points, space_from_dict
from dsgkd.search.tune import search

ARMS = {"tpe_asha": {"sampler": "tpe", "asha": True}, "random_no_es": {"sampler": "random", "asha": False}}
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)
TPE_STARTUP = inspect.signature(optuna.samplers.TPESampler).parameters["n_startup_trials"].default


def arm_space(data: dict[str, str], arm: str, seed: int, trials: int, epochs: int):
    raw = load_space(SEARCH_SPACES / "demo.yaml").model_dump(mode="json")
    raw["base"]["data"].update(path=data["train"], val_path=data["val"], test_path=data["test"],
                               transfer_path=data["transfer"])
    raw["base"]["train"]["epochs"] = epochs
    raw["budget"]["num_samples"] = trials
    raw["sampler"] = ARMS[arm]["sampler"]
    raw["asha"]["enabled"] = ARMS[arm]["asha"]
    raw["seed"] = seed
    return space_from_dict(raw, source=f"demo.yaml ({arm})")


def one_search(space, out: Path) -> dict:
    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # Tune's progress table: stdout holds only the JSON
        search(space, out)
    wall = time.time() - t0
    run = load_run(out, with_study=False)
    trials, reports = [], []
    for t in sorted(run.trials, key=lambda t: t.order):
        df = t.progress
        finish = float(df["timestamp"].max()) - t0 if len(df) else None
        trials.append({"order": t.order, "finish_s": _r(finish), "best": _r(t.value, 4), "epochs": t.epochs,
                       "stopped_by": t.stopped_by})
        if run.metric in df:
            reports += [(float(ts) - t0, float(v)) for ts, v in zip(df["timestamp"], df[run.metric])]
    values = [t["best"] if t["best"] is not None else -math.inf for t in trials]  # an errored trial adds nothing
    best_by_trial = [_r(v, 4) if math.isfinite(v) else None for v in itertools.accumulate(values, max)]
    reports.sort()
    running = itertools.accumulate((v for _, v in reports), max)
    curve = [(round(ts, 1), round(b, 4)) for (ts, _), b in zip(reports, running)]
    return {"wall_s": round(wall, 1), "epochs_trained": sum(t["epochs"] for t in trials),
            "stopped_early": sum(t["stopped_by"] == "asha" for t in trials), "final_best": best_by_trial[-1],
            "best_by_trial": best_by_trial, "best_by_wall_s": curve, "trials": trials}


def best_at(curve: list, t: float) -> float | None:
    seen = [b for ts, b in curve if ts <= t]
    return seen[-1] if seen else None


def stats(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 4), "sd": round(sd, 4), "n": len(values)}


def summarise(runs: dict[str, dict[int, dict]], trials: int) -> dict:
    shortest = min(r["wall_s"] for arm in runs.values() for r in arm.values())
    marks = [round(f * shortest, 1) for f in CHECKPOINTS]
    out = {"wall_checkpoints_s": marks}
    for arm, by_seed in runs.items():
        rs = list(by_seed.values())
        out[arm] = {"final_best": stats([r["final_best"] for r in rs]),
                    "best_after_trials": {str(k + 1): stats([r["best_by_trial"][k] for r in rs]) for k in range(trials)},
                    "best_at_wall_s": {str(m): stats([best_at(r["best_by_wall_s"], m) for r in rs]) for m in marks},
                    "wall_s": stats([r["wall_s"] for r in rs]), "epochs_trained": stats([r["epochs_trained"] for r in rs]),
                    "stopped_early": stats([r["stopped_early"] for r in rs])}
    a, b = runs["tpe_asha"], runs["random_no_es"]
    diffs = [a[s]["final_best"] - b[s]["final_best"] for s in a]
    out["tpe_asha_minus_random"] = {
        "final_best": stats(diffs), "seeds_tpe_asha_higher": sum(d > 0 for d in diffs),
        "seeds_equal": sum(d == 0 for d in diffs), "seeds": len(diffs),
        "epochs_ratio": round(out["tpe_asha"]["epochs_trained"]["mean"] / out["random_no_es"]["epochs_trained"]["mean"], 3),
        "wall_ratio": round(out["tpe_asha"]["wall_s"]["mean"] / out["random_no_es"]["wall_s"]["mean"], 3)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3, help="search seeds per arm (0..N-1)")
    ap.add_argument("--trials", type=int, default=16, help="trials per search, the seeded paper default included")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per trial (ASHA's max_t)")
    ap.add_argument("--notes", type=int, default=1200, help="labelled notes, split as `dsgkd demo --notes`")
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 trials, 1 epoch, 240 notes (the test)")
    a = ap.parse_args()
    if a.quick:
        a.seeds, a.trials, a.epochs, a.notes = 1, 2, 1, 240
    started = time.time()
    runs: dict[str, dict[int, dict]] = {arm: {} for arm in ARMS}
    with tempfile.TemporaryDirectory() as d, local_ray():
        d = Path(d)
        data = write_benchmark(d / "data", demo_sizes(a.notes))
        probe = arm_space(data, "tpe_asha", 0, a.trials, a.epochs)
        seeded = len(seeded_points(probe, resolve_pairs(probe, model_depth)))  # the same in both arms
        for seed in range(a.seeds):
            order = list(ARMS) if seed % 2 == 0 else list(ARMS)[::-1]
            for arm in order:
                print(f"[search_efficiency] seed {seed}: {arm}", file=sys.stderr, flush=True)
                runs[arm][seed] = one_search(arm_space(data, arm, seed, a.trials, a.epochs), d / f"{arm}-{seed}")
    print(json.dumps({"benchmark": "search_efficiency", "space": "search_spaces/demo.yaml", "notes": a.notes,
                      "trials": a.trials, "epochs": a.epochs, "seeds": a.seeds, "seeded_trials": seeded,
                      "tpe_startup_trials": TPE_STARTUP,
                      "arms": ARMS,
                      "summary": summarise(runs, a.trials), "runs": runs,
                      "total_wall_s": round(time.time() - started, 1)}))


def _r(v, nd: int = 1):
    return None if v is None else round(v, nd)


if __name__ == "__main__":
    main()
