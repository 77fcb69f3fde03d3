"""Can a recipe lift a table's KD-off control? KD-off fine-tunes of a table's student on its labelled training notes,
validation AUROC only (design seeds; the test split is never read), one JSON line per variant.

Each variant is `ENC,HEAD,SEED[,key=value...]`: encoder and head learning rates, a training seed, and any config
overrides (`train.epochs=12`, `train.batch_size=16`, `student.random_init=true`). The base is the table's own
recipe-grid config for the student (`OUT/recipe/<student>/lr.../seed_.../config.yaml`). `--width W` rebuilds the
student's stand-in W wide (and 2W in its feed-forward layer) before anything runs: a stronger general student.

    python benchmarks/control_recipe.py --table runs/tables/positive 1e-3,3e-3,1000 3e-3,1e-2,1000 \\
        1e-3,3e-3,1000,train.epochs=12 1e-3,3e-3,1000,student.random_init=true [--width 128]
"""
import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import transformers
import yaml

from dsgkd.config import RunConfig
from dsgkd.core.engine import fit
from dsgkd.models import tiny
from dsgkd.models.tiny import split_ref
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teachers import prepare_run


def variant(base: RunConfig, spec: str) -> RunConfig:
    enc, head, seed, *rest = spec.split(",")
    over = {"train.lr_encoder": float(enc), "train.lr_head": float(head), "train.seed": int(seed)}
    for item in rest:
        key, value = item.split("=", 1)
        over[key] = yaml.safe_load(value)
    return base.with_overrides(over)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", type=Path, default=Path("runs/tables/positive"))
    ap.add_argument("--student", default="xlmr-tiny", help="the stand-in whose recipe-grid config is the base")
    ap.add_argument("--width", type=int, help="rebuild the student stand-in this wide")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    base_path = next(a.table.glob(f"recipe/{a.student}*/lr*/seed_*/config.yaml"))
    base = RunConfig.from_yaml(base_path)
    if a.width:
        name = split_ref(base.student.ref)[0]
        tiny.TINY_SPECS[name] = dataclasses.replace(tiny.TINY_SPECS[name], hidden=a.width, intermediate=2 * a.width)
    for spec in a.variants:
        t0 = time.time()
        result = fit(prepare_run(resolve_run(variant(base, spec))))
        curve = [round(h["val_auroc"], 3) for h in result.history]
        print(json.dumps({"benchmark": "control_recipe", "base": str(base_path), "width": a.width, "variant": spec,
                          "best_val_auroc": max(curve), "val_auroc_per_epoch": curve,
                          "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
