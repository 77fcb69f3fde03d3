"""A table row trained with its frozen teachers live vs read from caches (`dsgkd table`'s default since the row
caches): seconds to build the caches, seconds of the training loop either way, and the validation AUROC either way
(the caches hold fp16 term vectors, the live path fp32, so the two runs may differ in the last digits).

The row is a config a table wrote (`OUT/<pair>/<row>/seed_<s>/config.yaml`), run for `--epochs` in one process with
one thread, as the table's workers run it; without `--config`, the searched row of seed 0 under `--table`.

    python benchmarks/row_cache.py --table runs/tables/positive [--config PATH] [--epochs 2]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import transformers

from dsgkd.config import RunConfig
from dsgkd.core.engine import fit
from dsgkd.pipeline import run_caches
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teachers import prepare_run


def timed_fit(cfg: RunConfig, cache: dict | None) -> dict:
    prepared = prepare_run(resolve_run(cfg), teacher_weights=cache is None)
    t0 = time.time()
    result = fit(prepared, teacher_cache=cache)
    return {"fit_s": round(time.time() - t0, 1), "val_auroc": round(result.metrics["val_auroc"], 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", type=Path, default=Path("runs/tables/positive"))
    ap.add_argument("--config", type=Path, help="a row's config.yaml (default: the table's searched row, seed 0)")
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = a.config or next(a.table.glob("*/searched/seed_0/config.yaml"))
    cfg = RunConfig.from_yaml(path).with_overrides({"train.epochs": a.epochs, "train.patience": a.epochs})
    prepare_run(resolve_run(cfg))  # fine-tuned teachers made (or found) before anything is timed
    live = timed_fit(cfg, None)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        run_caches.build([cfg], Path(d), workers=1)
        build_s = round(time.time() - t0, 1)
        cached = timed_fit(cfg, run_caches.row_cache(cfg, Path(d)))
    print(json.dumps({"benchmark": "row_cache", "config": str(path), "epochs": a.epochs, "live": live,
                      "cached": cached, "cache_build_s": build_s,
                      "cached_over_live": round(cached["fit_s"] / live["fit_s"], 3),
                      "cached_plus_build_over_live": round((cached["fit_s"] + build_s) / live["fit_s"], 3)}))


if __name__ == "__main__":
    main()
