"""A table's runs in worker processes: each fine-tune, teacher scoring or student row in its own spawned process
with one thread, `workers` at a time (two processes on two cores beat one with two threads), every run in its
own directory and skipped when complete, so a re-run of the table resumes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dsgkd.config import RunConfig
from dsgkd.experiments.table_protocol import DEFAULT_WORLD
from dsgkd.pipeline import run_caches
from dsgkd.pipeline.teacher_cache import caches_dir
from dsgkd.pipeline.workers import worker_pool


def _job(kind: str, cfg_yaml: str, out: str, world: str, cache: dict[str, str] | None) -> str:
    """One run in a worker process (one thread each: two processes on two cores beat one with two threads),
    with the held-out-term probe of the model it trained (a student) or scored (a fine-tuned teacher). A
    student whose KD terms read `cache` (source → teacher cache) loads no teacher weights."""
    import torch
    import transformers
    import yaml

    from dsgkd.experiments.term_probe import write_probe
    from dsgkd.pipeline.resolve import resolve_run
    from dsgkd.pipeline.teachers import prepare_run
    from dsgkd.pipeline.train import staged_output, train_one

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()  # per-load reports from hundreds of runs would bury the table
    transformers.utils.logging.disable_progress_bar()  # and its "Loading weights" / "Writing model shards" bars
    cfg = RunConfig.from_dict(yaml.safe_load(cfg_yaml), source=out)
    with staged_output(Path(out), overwrite=True) as stage:
        if kind == "teacher":
            write_probe(stage, str(evaluate_teacher(cfg, stage)), world)
        else:
            run = resolve_run(cfg)
            train_one(run, stage, prepared=prepare_run(run, teacher_weights=cache is None), teacher_cache=cache,
                      log=lambda *_: None)
            write_probe(stage, str(stage / "student"), world)
    return out


def evaluate_teacher(cfg: RunConfig, out: Path) -> Path:
    """Fine-tune (or reuse) the teacher exactly as logit KD gets it, then score it like any run: threshold
    from its validation predictions, test predicted once. Returns the fine-tuned teacher's directory."""
    from dsgkd.core.metrics import choose_threshold
    from dsgkd.data.emr import load_splits
    from dsgkd.models.load import load_classifier
    from dsgkd.pipeline.teachers import finetune_record, finetuned_teacher_dir
    from dsgkd.pipeline.train import predict_split

    splits = load_splits(cfg.data)
    tuned = finetuned_teacher_dir(cfg, splits)
    tok, model = load_classifier(str(tuned))
    threshold = choose_threshold(*predict_split(model, tok, splits.val, cfg), cfg.eval.threshold)
    y, p = predict_split(model, tok, splits.test, cfg)
    write_scored(out, y, p, threshold, cfg, finetune=finetune_record(tuned))
    return tuned


def write_scored(out: Path, y: np.ndarray, p: np.ndarray, threshold: float, cfg: RunConfig, **extra) -> None:
    from dsgkd.core.metrics import evaluate_with_ci

    metrics = {"seed": cfg.train.seed, "threshold": threshold, **extra,
               "test": evaluate_with_ci(y, p, threshold, n_boot=cfg.eval.n_bootstrap, seed=cfg.train.seed)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    pd.DataFrame({"label": y, "prob": p}).to_csv(out / "predictions.csv", index_label="row")


def run_jobs(jobs: list[tuple[str, RunConfig, Path]], workers: int, world: str | None,
             cache_root: Path | None = None) -> None:
    """Run the jobs not yet complete, `workers` at a time. With `cache_root`, the students' teachers are first
    cached there (`pipeline.run_caches`, planned over every job so a resumed table asks for the same caches) and read
    from it."""
    todo = [(kind, cfg, out) for kind, cfg, out in jobs if not (out / "metrics.json").is_file()]
    if not todo:
        return
    students = [cfg for kind, cfg, _ in jobs if kind == "student"]
    if cache_root is not None and any(cfg.distill.kd_on for kind, cfg, _ in todo if kind == "student"):
        print(f"  teacher caches for the rows: {caches_dir(cache_root)}", flush=True)
        run_caches.build(students, cache_root, workers)
    todo = [(kind, cfg.dump_yaml(), str(out), world or DEFAULT_WORLD,
             run_caches.row_cache(cfg, cache_root) if cache_root is not None and kind == "student" else None)
            for kind, cfg, out in todo]
    started = time.time()
    with worker_pool(workers, threads=1) as pool:
        for k, done in enumerate(pool.map(_job, *zip(*todo)), 1):
            eta = (time.time() - started) / k * (len(todo) - k)
            print(f"  done {Path(done).relative_to(Path(done).parents[2])} ({k}/{len(todo)}, ETA {eta / 60:.0f} min)",
                  flush=True)
