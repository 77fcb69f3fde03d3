"""A search's set-up, as Ray tasks before the trials that read it, never in the driver between trials: the
encoded-note stores (`dsgkd.pipeline.note_store`) and the teacher caches (on a GPU when the cluster has one).

What a cache group is, RUN/teacher_cache/index.json and the build itself are `dsgkd.pipeline.teacher_cache`.
The search builds the groups of its categorical variants before the Tuner starts; reselect builds those its
re-runs still lack. Every set-up task runs in a worker process that exits when the task ends (`max_calls=1`):
Ray reuses idle workers, and a trial started in the worker that had just built a cache would carry that
build's heap (a 20,000-note build peaks at ~1.8 GB). Each task's peak memory is kept in RUN/setup_memory.json,
apart from the trials'.

The work is packed into as many tasks as the cluster has slots for it (`pack`), keeping one teacher's caches (or one
pair's stores) together: a fresh worker pays ~4 s importing torch and transformers before it does anything, so on
a 2-CPU machine sixteen one-item tasks cost more than the builds, and a teacher's fine-tuned caches in one task
fine-tune it once there instead of making the other tasks wait on its lock with a slot held.
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
    # a teacher's fine-tuned caches first in its task: the fine-tune they share runs before anything waits on it
    jobs.sort(key=lambda job: (job[2].teacher.ref, job[1] != "finetuned"))
    gpu = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    build = ray.remote(num_cpus=1, num_gpus=gpu, max_calls=1)(_build_caches)
    tasks = pack(jobs, lambda job: job[2].teacher.ref, _slots("GPU" if gpu else "CPU"))
    done = ray.get([build.remote([(cfg.model_dump(mode="json"), layers, source, _attention(space, cfg, source))
                                  for _, source, cfg, layers in task], str(caches_dir(run_dir)), str(store_dir(run_dir)))
                    for task in tasks])
    built = _numbered(done)
    record_caches(run_dir, {index_key(group, source): b["dir"]
                            for (group, source, _, _), b in zip([job for task in tasks for job in task], built)})
    _record_setup(run_dir, "teacher_caches", built, phase)


def build_note_stores(run_dir: Path, variants: list[tuple[str, RunConfig]]) -> None:
    """The encoded-note stores of every distinct (data, models, term rule, length) among `variants` under
    RUN/note_store; a task writes those of one pair (its tokenizers loaded once, a missing stand-in built there)."""
    todo = list({store_variant(cfg): cfg for _, cfg in variants}.values())
    write = ray.remote(num_cpus=1, max_calls=1)(_write_stores)
    tasks = pack(todo, lambda cfg: (cfg.student.ref, cfg.teacher.ref), _slots("CPU"))
    done = ray.get([write.remote([cfg.model_dump(mode="json") for cfg in task], str(store_dir(run_dir)))
                    for task in tasks])
    _record_setup(run_dir, "note_stores", _numbered(done), "search")


def pack(items: list, key, slots: int) -> list[list]:
    """`items` in set-up tasks: one per distinct `key(item)` (in first-seen order, each keeping its items' order),
    the largest halved while there are fewer tasks than `slots` so a wide cluster still builds side by side."""
    tasks: dict = {}
    for item in items:
        tasks.setdefault(key(item), []).append(item)
    out = list(tasks.values())
    while len(out) < slots and any(len(task) > 1 for task in out):
        i = max(range(len(out)), key=lambda j: len(out[j]))
        half = (len(out[i]) + 1) // 2
        out[i:i + 1] = [out[i][:half], out[i][half:]]
    return out


def _numbered(done: list[list[dict]]) -> list[dict]:
    """Each task's records, flat, with the task's number: the peak they carry is their task's, shared."""
    return [{"task": i, **record} for i, records in enumerate(done) for record in records]


def _slots(resource: str) -> int:
    return max(1, int(ray.cluster_resources().get(resource, 1)))


def _write_stores(cfgs: list[dict[str, Any]], store: str) -> list[dict]:
    from dsgkd.data.emr import load_splits
    from dsgkd.models.load import load_tokenizer
    from dsgkd.pipeline.prepare import load_transfer

    distributed.quiet_transformers()
    records = []
    for cfg in cfgs:
        run = RunConfig.model_validate(cfg)
        train, _, val = encode_run_notes(run, load_splits(run.data), load_transfer(run),
                                         load_tokenizer(run.student.ref), load_tokenizer(run.teacher.ref),
                                         store=Path(store))
        records.append({"variant": store_variant(run), "notes": len(train) + len(val),
                        "mb": round((train.nbytes() + val.nbytes()) / 2**20, 1)})
    return [{**record, **_peak()} for record in records]


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


def _build_caches(jobs: list[tuple[dict[str, Any], list[int], str, bool]], out_dir: str, store: str) -> list[dict]:
    """(config, layers, source, attention) per cache, built one after another in this task."""
    import torch

    from dsgkd.pipeline.teacher_cache import build_cache

    distributed.quiet_transformers()
    device = torch.device("cuda") if torch.cuda.is_available() else None
    built = [{"dir": str(build_cache(RunConfig.model_validate(cfg), layers, out_dir, source=source,
                                     attention=attention, device=device, store=Path(store))), "source": source}
             for cfg, layers, source, attention in jobs]
    return [{**record, **_peak()} for record in built]


def _may_be_positive(space: SearchSpace, key: str) -> bool:
    declared = space.params.get(key)
    values = [setting(space.base, key)] if declared is None else declared.values()
    return any(v > 0 for v in values)
