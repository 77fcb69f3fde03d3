"""A search's set-up, as Ray tasks before the trials that read it, never in the driver between trials: the
encoded-note stores (`dsgkd.pipeline.note_store`) and the teacher caches (on a GPU when the cluster has one).

What a cache group is, RUN/teacher_cache/index.json and the build itself are `dsgkd.pipeline.teacher_cache`.
The search builds the groups of its categorical variants before the Tuner starts; reselect builds those its
re-runs still lack. Every set-up task runs in a worker process that exits when the task ends (`max_calls=1`):
Ray reuses idle workers, and a trial started in the worker that had just built a cache would carry that
build's heap (a 20,000-note build peaks at ~1.8 GB). Each task's peak memory is kept in RUN/setup_memory.json,
apart from the trials'.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ray

from dsgkd.config import RunConfig
from dsgkd.core.terms import registered
from dsgkd.pipeline.note_store import encode_run_notes, store_dir, store_variant
from dsgkd.pipeline.teacher_cache import cache_group, caches_dir, index_key, plan_groups, record_caches
from dsgkd.search import distributed
from dsgkd.search.space import SearchSpace, setting
from dsgkd.storage import atomic_write_text

SETUP_MEMORY = "setup_memory.json"  # under RUN


def build_caches(space: SearchSpace, plans, run_dir: Path, variants: list[tuple[str, RunConfig]], *,
                 phase: str = "search") -> None:
    """The teacher signal of every cache group among `variants` ((pair, config)), of each teacher (pretrained,
    fine-tuned) some trial of the group may read, for the union of the layers its pairs' maps can read, added to
    RUN/teacher_cache/index.json (`record_caches`). Each build reads its KD pool from the note store the set-up
    wrote before it (`build_note_stores`) rather than tokenising it again."""
    groups = plan_groups(variants, {pair: plans[pair].teacher_states for pair, _ in variants})
    if not groups:
        return
    read: dict[str, set[str]] = {}
    for _, cfg in variants:
        read.setdefault(cache_group(cfg), set()).update(_sources(space, cfg))
    jobs = [(group, source, cfg, layers) for group, (cfg, layers) in groups.items() for source in sorted(read[group])]
    gpu = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    build = ray.remote(num_cpus=1, num_gpus=gpu, max_calls=1)(_build_cache)
    built = ray.get([build.remote(cfg.model_dump(mode="json"), layers, str(caches_dir(run_dir)), source,
                                  _attention(space, cfg, source), str(store_dir(run_dir)))
                     for _, source, cfg, layers in jobs])
    record_caches(run_dir, {index_key(group, source): b["dir"] for (group, source, _, _), b in zip(jobs, built)})
    _record_setup(run_dir, "teacher_caches", built, phase)


def build_note_stores(run_dir: Path, variants: list[tuple[str, RunConfig]]) -> None:
    """The encoded-note stores of every distinct (data, models, term rule, length) among `variants`, one set-up
    task each, under RUN/note_store."""
    todo = {store_variant(cfg): cfg for _, cfg in variants}
    write = ray.remote(num_cpus=1, max_calls=1)(_write_stores)
    built = ray.get([write.remote(cfg.model_dump(mode="json"), str(store_dir(run_dir))) for cfg in todo.values()])
    _record_setup(run_dir, "note_stores", built, "search")


def _write_stores(cfg: dict[str, Any], store: str) -> dict:
    from dsgkd.data.emr import load_splits
    from dsgkd.models.load import load_tokenizer
    from dsgkd.pipeline.prepare import load_transfer

    distributed.quiet_transformers()
    run = RunConfig.model_validate(cfg)
    train, _, val = encode_run_notes(run, load_splits(run.data), load_transfer(run), load_tokenizer(run.student.ref),
                                     load_tokenizer(run.teacher.ref), store=Path(store))
    return {"variant": store_variant(run), "notes": len(train) + len(val), "mb": round((train.nbytes() + val.nbytes())
                                                                                     / 2**20, 1), **_peak()}


def _peak() -> dict[str, float]:
    import resource

    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _record_setup(run_dir: Path, kind: str, tasks: list[dict], phase: str) -> None:
    """RUN/setup_memory.json: each set-up task's peak resident memory, by kind, appended with the phase that ran
    it ("search", "reselect") and when, so a resumed search or a reselect adds to what the first set-up
    measured rather than writing over it."""
    path = Path(run_dir) / SETUP_MEMORY
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record.setdefault(kind, []).extend({"phase": phase, "at": at, **task} for task in tasks)
    atomic_write_text(path, json.dumps(record, indent=1))


def _sources(space: SearchSpace, cfg: RunConfig) -> set[str]:
    """The teachers the terms that may be on in some trial of this variant read."""
    return {term.source(cfg.distill) for term in registered() if _may_be_positive(space, f"distill.{term.weight}")}


def _attention(space: SearchSpace, cfg: RunConfig, source: str) -> bool:
    """Whether a trial may distil this teacher's attentions."""
    return any(_may_be_positive(space, f"distill.{term.weight}") for term in registered()
               if "attentions" in term.teacher_outputs and term.source(cfg.distill) == source)


def _build_cache(cfg: dict[str, Any], layers: list[int], out_dir: str, source: str, attention: bool,
                 store: str) -> dict:
    import torch

    from dsgkd.pipeline.teacher_cache import build_cache

    distributed.quiet_transformers()
    device = torch.device("cuda") if torch.cuda.is_available() else None
    built = build_cache(RunConfig.model_validate(cfg), layers, out_dir, source=source, attention=attention,
                        device=device, store=Path(store))
    return {"dir": str(built), "source": source, **_peak()}


def _may_be_positive(space: SearchSpace, key: str) -> bool:
    declared = space.params.get(key)
    values = [setting(space.base, key)] if declared is None else declared.values()
    return any(v > 0 for v in values)
