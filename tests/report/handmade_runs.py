"""Hand-made runs for the analysis tests that need no Ray: a `Run` of `Trial`s as `load_run` would build them.

The space has what makes plots hard to keep readable: long pair names, every layer-map spelling, a log-scaled
rate and a setting only some trials sample (the temperature, where gamma > 0).
"""
import numpy as np
import pandas as pd

from dsgkd.report.run_model import Run, Trial
from dsgkd.search.space import space_from_dict

PAIRS = [("biobert-base-cased-v1.2", "xlm-roberta-base"), ("kmbert-tiny", "xlmr-tiny"),
         ("pubmedbert-abstract-fulltext", "kobert-tiny")]
LAYER_MAPS = ["all", "uniform", "skip", "last_k:2", "first_last"]


def make_space(metric: str = "val_auroc", second: str | None = "val_brier"):
    return space_from_dict({
        "base": {"teacher": {"finetune": True},
                 "train": {"epochs": 4, "select_metric": metric.removeprefix("val_")}},
        "pairs": [{"teacher": t, "student": s} for t, s in PAIRS],
        "params": {"distill.alpha": {"type": "float", "low": 0.0, "high": 1.0},
                   "distill.gamma": {"type": "categorical", "choices": [0.0, 0.5]},
                   "distill.temperature": {"type": "float", "low": 1.0, "high": 4.0},
                   "train.lr_encoder": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
                   "distill.selector": {"type": "categorical", "choices": ["latin", "all"]}},
        "layer_maps": LAYER_MAPS, "metric": metric, "second_objective": second, "seed": 0,
    })


def trial(space, i: int, first: float, second: float, rng, status: str = "TERMINATED") -> Trial:
    """A trial whose best epoch (by the primary metric) is epoch 2 of 3, holding (first, second) there."""
    t, s = PAIRS[i % len(PAIRS)]
    pair = space.pair(f"{t}>{s}").key
    gamma = float(rng.choice([0.0, 0.5]))
    params = {"pair": pair, f"layer_map/{pair}": LAYER_MAPS[i % len(LAYER_MAPS)], "distill.alpha": float(rng.random()),
              "distill.gamma": gamma, "train.lr_encoder": float(10 ** rng.uniform(-5, -3)),
              "distill.selector": ["latin", "all"][i % 2]}
    if gamma > 0:
        params["distill.temperature"] = float(rng.uniform(1, 4))
    worse = -0.05 if space.mode == "max" else 0.05
    names = [space.metric, space.second_objective or "val_brier"]
    progress = pd.DataFrame({"epoch": [1, 2, 3], names[0]: [first + worse, first, first + worse],
                             names[1]: [second * 0.9, second, second * 0.8]})  # the second peaks elsewhere
    return Trial(f"t{i:02d}", i, status, params, None, progress, value=first, epoch=2,
                 second=second if space.second_objective else None, epochs=3, max_epochs=4, stopped_by="patience")


def make_run(tmp_path, points, *, metric: str = "val_auroc", second: str | None = "val_brier", seed: int = 0,
             extra: list[Trial] = ()) -> Run:
    space = make_space(metric, second)
    rng = np.random.default_rng(seed)
    trials = [trial(space, i, a, b, rng) for i, (a, b) in enumerate(points)] + list(extra)
    return Run(tmp_path, space, trials, None, [])
