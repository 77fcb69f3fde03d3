"""A table's runs in worker processes: each fine-tune, teacher scoring or student row in its own spawned process
with one thread, `workers` at a time (two processes on two cores beat one with two threads), every run in its
own directory and skipped when complete, so a re-run of the table resumes.

One call takes the jobs of several pairs (`run_groups`), so no pair's last run holds a core idle while the next
pair waits to start, and a KD-off student that another pair repeats runs once: a KD-off run reads no teacher, so
two whose configs differ only in the teacher and KD settings train the same student (the 606 table's two controls
wrote the same predictions, byte for byte, on every seed), and the second pair's folder links to the first's. A
student an earlier table trained is rescored rather than trained (`table_reuse`). The teacher rows' jobs (each
teacher fine-tuned alone, per seed, shared by the pairs with that teacher) are made here too.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dsgkd.config import RunConfig
from dsgkd.experiments.table_protocol import DEFAULT_WORLD
from dsgkd.experiments.table_reuse import Reuse
from dsgkd.pipeline import run_caches
from dsgkd.pipeline.teacher_cache import caches_dir
from dsgkd.pipeline.workers import worker_pool


def _job(kind: str, cfg_yaml: str, out: str, world: str, cache: dict[str, str] | None, source: str | None) -> str:
    """One run in a worker process (one thread each: two processes on two cores beat one with two threads),
    with the held-out-term probe of the model it trained (a student) or scored (a fine-tuned teacher). A
    student whose KD terms read `cache` (source → teacher cache) loads no teacher weights; one with a `source`
    (an earlier table's run that trained it, `table_reuse`) is not trained but rescored on this table's test split,
    its probe (which reads no note) copied."""
    import shutil

    import torch
    import transformers
    import yaml

    from dsgkd.experiments.term_probe import PROBE_FILE, write_probe
    from dsgkd.pipeline.rescore import rescore_run
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
        elif source is not None:
            rescore_run(cfg, Path(source), stage)
            if (Path(source) / PROBE_FILE).is_file():
                shutil.copyfile(Path(source) / PROBE_FILE, stage / PROBE_FILE)
            else:
                write_probe(stage, str(stage / "student"), world)
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


Job = tuple[str, RunConfig, Path]  # (kind: "student" or "teacher", config, run folder)


def teacher_dirs(out: Path, teacher: str) -> dict[str, Path]:
    """Teacher row → where its fine-tunes live (per seed below): shared by every pair with that teacher."""
    from dsgkd.models.tiny import wrong_knowledge_twin

    return {"teacher": out / "teachers" / teacher, "random_teacher": out / "teachers" / f"{teacher}-random",
            "wrong_teacher": out / "teachers" / wrong_knowledge_twin(teacher)}


def teacher_jobs(base: RunConfig, out: Path, teacher: str, seeds: list[int]) -> list[tuple[str, RunConfig, Path]]:
    """Each teacher row's fine-tunes, one per seed, at the teacher's chosen recipe (its twins share it)."""
    from dsgkd.models.tiny import wrong_knowledge_twin

    overrides = {"teacher": {}, "random_teacher": {"teacher.random_init": True},
                 "wrong_teacher": {"teacher.ref": wrong_knowledge_twin(teacher)}}
    return [("teacher", base.with_overrides({"teacher.finetune": True, "train.seed": seed, **overrides[row]}),
             folder / f"seed_{seed}") for row, folder in teacher_dirs(out, teacher).items() for seed in seeds]


def link_teachers(out: Path, pair, pair_dir: Path, seeds: list[int]) -> None:
    """The teacher rows are the shared fine-tuned teachers under OUT/teachers, linked into the pair."""
    for (row, folder), seed in itertools.product(teacher_dirs(out, pair.teacher).items(), seeds):
        link = pair_dir / row / f"seed_{seed}"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder / f"seed_{seed}", target_is_directory=True)


def run_jobs(jobs: list[Job], workers: int, world: str | None, cache_root: Path | None = None,
             reuse: Reuse | None = None) -> None:
    """`run_groups` for one group of jobs."""
    run_groups([(jobs, cache_root)], workers, world, reuse)


def run_groups(groups: list[tuple[list[Job], Path | None]], workers: int, world: str | None,
               reuse: Reuse | None = None) -> None:
    """Run the jobs not yet complete, `workers` at a time in one pool. A group with a cache root has its students'
    teachers cached there first (`pipeline.run_caches`, planned over every job of the group so a resumed table asks
    for the same caches) and read from it; every group's caches are built in one pool too, before any job starts (a
    teacher-scoring job reuses the teachers those builds fine-tuned). A repeated KD-off student runs once and is
    linked where it repeats (`shared_runs`). With `reuse`, a student an earlier table trained is rescored instead
    (`table_reuse`); caches are built only where a KD student still trains."""
    groups, links = shared_runs(groups)
    todo = [[(kind, cfg, out) for kind, cfg, out in jobs if not (out / "metrics.json").is_file()]
            for jobs, _ in groups]
    sources = {out: reuse.source(cfg, out) for left in todo for kind, cfg, out in left
               if reuse is not None and kind == "student"}
    sources = {out: src for out, src in sources.items() if src is not None}
    if any(todo):
        _build_caches([(jobs, root) for (jobs, root), left in zip(groups, todo) if root is not None and any(
            kind == "student" and cfg.distill.kd_on and out not in sources for kind, cfg, out in left)], workers)
        _run([(*job, root, sources.get(job[2])) for (_, root), left in zip(groups, todo) for job in left],
             workers, world)
        if reuse is not None:
            reuse.runs += len(sources)
    for link, target in links:
        if not link.exists() and (target / "metrics.json").is_file():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)


def shared_runs(groups: list[tuple[list[Job], Path | None]]
                ) -> tuple[list[tuple[list[Job], Path | None]], list[tuple[Path, Path]]]:
    """`groups` with each set of KD-off students that repeat one another (the same config but for `teacher` and
    `distill`) cut to one run, a complete one where there is one, else the first, and each folder named twice (the
    shared teacher fine-tunes of two pairs with one teacher) run once; and (link, the run kept) for each dropped
    student that is not already complete in its own folder (a table that trained both before keeps both)."""
    found: dict[str, list[Path]] = {}
    for jobs, _ in groups:
        for kind, cfg, out in jobs:
            if (key := _kd_off_key(kind, cfg)) is not None:
                found.setdefault(key, []).append(out)
    kept = {key: next((out for out in outs if (out / "metrics.json").is_file()), outs[0])
            for key, outs in found.items()}
    seen: set[Path] = set()
    unique = []
    for jobs, root in groups:
        mine = []
        for kind, cfg, out in jobs:
            key = _kd_off_key(kind, cfg)
            if out not in seen and (key is None or kept[key] == out):
                seen.add(out)
                mine.append((kind, cfg, out))
        unique.append((mine, root))
    links = [(out, kept[key]) for key, outs in found.items() for out in outs
             if out != kept[key] and not (out / "metrics.json").is_file()]
    return unique, links


def _kd_off_key(kind: str, cfg: RunConfig) -> str | None:
    """What a KD-off student depends on (None for a KD run or a teacher): all but the teacher and the KD settings."""
    if kind != "student" or cfg.distill.kd_on:
        return None
    return json.dumps(cfg.model_dump(mode="json", exclude={"teacher", "distill", "provenance"}), sort_keys=True)


def _build_caches(groups: list[tuple[list[Job], Path]], workers: int) -> None:
    """Every group's caches (planned over all its students, done or not, once per cache root) in one pool."""
    students: dict[Path, list[RunConfig]] = {}
    for jobs, root in groups:
        students.setdefault(root, []).extend(cfg for kind, cfg, _ in jobs if kind == "student")
    builds = sum(len(run_caches.plan(configs)) for configs in students.values())
    if not builds:
        return
    for root in students:
        print(f"  teacher caches for the rows: {caches_dir(root)}", flush=True)
    with worker_pool(min(workers, builds), threads=1) as pool:
        for wait in [run_caches.submit(configs, root, pool) for root, configs in students.items()]:
            wait()


def _run(todo: list[tuple[str, RunConfig, Path, Path | None, Path | None]], workers: int, world: str | None) -> None:
    args = [(kind, cfg.dump_yaml(), str(out), world or DEFAULT_WORLD,
             run_caches.row_cache(cfg, root) if root is not None and kind == "student" and source is None else None,
             None if source is None else str(source))
            for kind, cfg, out, root, source in todo]
    started = time.time()
    with worker_pool(workers, threads=1) as pool:
        for k, done in enumerate(pool.map(_job, *zip(*args)), 1):
            eta = (time.time() - started) / k * (len(args) - k)
            print(f"  done {Path(done).relative_to(Path(done).parents[2])} ({k}/{len(args)}, ETA {eta / 60:.0f} min)",
                  flush=True)
