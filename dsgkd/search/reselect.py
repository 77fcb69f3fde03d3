"""Noise-aware selection (`budget.reselect: {top_k: K, seeds: S}`): the K best trials, trained again on S seeds.

The search's value of its best trial was chosen for being high, so a lucky seed counts in it (the winner's
curse). After the Tuner, in the same Ray session, the K best finished KD-on trials (the order export uses)
are each trained from scratch on S fresh seeds, their `train.seed` + 1 ... + S, never the search's own seed,
whose run is the one selected; so is the best finished KD-off control of each of their pairs, on the same
seeds, as a like-for-like baseline. The re-runs are Ray tasks with a trial's resources (a single-worker one
trains in the task; a multi-worker one is a task holding `trial_driver` that fits a TorchTrainer on
RUN/train/reselect-<trial>-seed<s>, like a trial driver, and deletes it once done), at most as many at once as trials run at once.
Each trains the trial's full config (all `train.epochs`, the engine's patience, no ASHA), as `dsgkd train`
would, and keeps its best epoch by the search metric; only validation is scored, never the test split.

RUN/reselect.json holds the plan (trials, roles, seeds, search values) and one entry per (trial, seed),
rewritten atomically as each finishes, so `dsgkd search --resume` re-runs only what has no value yet (a
failed re-run is retried, as resume retries errored trials). `dsgkd export` then picks by the mean.
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import ray

from dsgkd.config import RunConfig
from dsgkd.errors import NonFiniteLossError
from dsgkd.pipeline.note_store import store_dir
from dsgkd.pipeline.teacher_cache import cache_dirs, drop_damaged_caches
from dsgkd.search import distributed
from dsgkd.search.caches import build_caches
from dsgkd.search.local_ray import trial_resources
from dsgkd.search.prune import ranked_finished, search_value
from dsgkd.search.space import SearchSpace
from dsgkd.search.trial_records import RESELECT_FILE, load_experiment, read_reselect
from dsgkd.storage import atomic_write_text


def make_plan(space: SearchSpace, trials) -> list[dict[str, Any]]:
    """The trials to re-run, candidates first in their search order, then the controls of their pairs."""
    r = space.budget.reselect
    candidates = ranked_finished(space, trials)[:r.top_k]
    best_control: dict[str, Any] = {}
    for c in ranked_finished(space, trials, kd=False):
        best_control.setdefault(c.config["pair"], c)
    controls = [best_control[pair] for pair in dict.fromkeys(t.config["pair"] for t in candidates)
                if pair in best_control]
    plan = []
    for role, group in (("candidate", candidates), ("control", controls)):
        for rank, t in enumerate(group, 1):
            value, epoch = search_value(t, space)
            seed = space.trial_config(t.config).train.seed
            plan.append({"trial_id": t.trial_id, "role": role, "pair": t.config["pair"], "search_rank": rank,
                         "search_value": value, "search_epoch": epoch, "search_seed": seed,
                         "seeds": [seed + i for i in range(1, r.seeds + 1)], "config": t.config})
    return plan


def run(space: SearchSpace, run_dir: Path, plans, *, use_cache: bool, concurrency: int) -> dict[str, Any] | None:
    """Re-run what RUN/reselect.json does not hold yet; returns its final content (None without reselect)."""
    if space.budget.reselect is None:
        return None
    plan = make_plan(space, load_experiment(run_dir / "tune").trials)
    wanted = {(p["trial_id"], s) for p in plan for s in p["seeds"]}
    kept = [e for e in (read_reselect(run_dir) or {}).get("runs", [])
            if (e["trial_id"], e["seed"]) in wanted and e.get("value") is not None]
    state = {"metric": space.metric, "mode": space.mode, **space.budget.reselect.model_dump(),
             "trials": [{k: v for k, v in p.items() if k != "config"} for p in plan], "runs": kept}
    atomic_write_text(run_dir / RESELECT_FILE, json.dumps(state, indent=1))
    done = {(e["trial_id"], e["seed"]) for e in kept}
    todo = [(p, seed, space.trial_config(p["config"]).with_overrides({"train.seed": seed}, source="reselect"))
            for p in plan for seed in p["seeds"] if (p["trial_id"], seed) not in done]
    if not todo:
        return state
    print(f"[dsgkd] reselect: {len(todo)} re-run(s) of {len(wanted)} to do ({len(plan)} trials × "
          f"{space.budget.reselect.seeds} seeds)")
    if use_cache:
        drop_damaged_caches(run_dir)  # a cache damaged since the search built it is built again here
        build_caches(space, plans, run_dir, [(p["pair"], cfg) for p, _, cfg in todo
                                             if cfg.distill.kd_on and cache_dirs(cfg, run_dir) is None],
                     phase="reselect")
    pending: dict[Any, tuple[dict, int]] = {}
    queue = list(todo)
    while queue or pending:
        while queue and len(pending) < concurrency:
            p, seed, cfg = queue.pop(0)
            cache = cache_dirs(cfg, run_dir) if use_cache and cfg.distill.kd_on else None
            pending[_submit(space, cfg, cache, f"reselect-{p['trial_id']}-seed{seed}", run_dir)] = (p, seed)
        [ref], _ = ray.wait(list(pending), num_returns=1)
        p, seed = pending.pop(ref)
        entry = {"trial_id": p["trial_id"], "seed": seed}
        try:
            entry.update(ray.get(ref))
        except ray.exceptions.RayError as e:  # the task raised, or its worker died past its retries
            cause = getattr(e, "cause", None) or e
            entry.update(value=None, error=f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"[:300])
        state["runs"].append(entry)
        atomic_write_text(run_dir / RESELECT_FILE, json.dumps(state, indent=1))
        shown = f"{space.metric} {entry['value']:.4f} at epoch {entry['epoch']}" if entry["value"] is not None \
            else entry["error"]
        print(f"[dsgkd] reselect {p['role']} {p['trial_id']} seed {seed}: {shown} "
              f"({len(state['runs'])}/{len(wanted)})")
    return state


def _submit(space: SearchSpace, cfg: RunConfig, cache: dict[str, Path] | None, name: str, run_dir: Path):
    """One re-run as a Ray task with a trial's resources: trained in the task, or a TorchTrainer's driver."""
    b, res = space.budget, trial_resources(space)
    options = {"num_cpus": res.pop("CPU", 0), "num_gpus": res.pop("GPU", 0), "resources": res,
               "max_retries": b.trial_retries}
    args = (cfg.model_dump(mode="json"), distributed.cache_paths(cache), str(store_dir(run_dir)), space.metric)
    if b.workers_per_trial == 1:
        return _rerun_in_task.options(**options).remote(*args)
    trainer = {"workers": b.workers_per_trial, "cpus_per_worker": b.cpus_per_worker,
               "gpus_per_worker": b.gpus_per_worker, "max_failures": b.worker_retries}
    return _rerun_with_workers.options(**options).remote(*args, name, str(run_dir / "train"), trainer)


@ray.remote
def _rerun_in_task(cfg_json: dict, cache: dict[str, str] | None, note_store: str, metric: str) -> dict[str, Any]:
    from dsgkd.core.engine import fit
    from dsgkd.pipeline.resolve import resolve_run
    from dsgkd.pipeline.teachers import prepare_run

    distributed.quiet_transformers()
    started = time.time()
    cfg = RunConfig.model_validate(cfg_json)
    result = fit(prepare_run(resolve_run(cfg), teacher_weights=cache is None, note_store=Path(note_store)),
                 teacher_cache=cache)
    return _record(result.history, result.best_epoch, metric, time.time() - started)


@ray.remote
def _rerun_with_workers(cfg_json: dict, cache: dict[str, str] | None, note_store: str, metric: str, name: str,
                        storage: str,
                        trainer: dict[str, Any]) -> dict[str, Any]:
    """A TorchTrainer named after the (trial, seed), so a re-run killed with the search resumes from its last
    epoch. The history comes from its last checkpoint's state.json; then the Train run is deleted whole (what
    counts is in RUN/reselect.json, and a run redone later must start afresh, not from a dropped checkpoint)."""
    started = time.time()
    cfg = RunConfig.model_validate(cfg_json)
    result = distributed.make_trainer(cfg, name=name, storage_path=storage, teacher_cache=cache,
                                      note_store=Path(note_store), **trainer).fit()
    if result.return_value:
        raise NonFiniteLossError(result.return_value)
    with result.checkpoint.as_directory() as ckpt:
        state = json.loads((Path(ckpt) / "state.json").read_text(encoding="utf-8"))
    shutil.rmtree(Path(storage) / name, ignore_errors=True)
    return _record(state["history"], state["best_epoch"], metric, time.time() - started)


def _record(history: list[dict[str, float]], best_epoch: int, metric: str, seconds: float) -> dict[str, Any]:
    """The re-run's best epoch: its value of the search metric and its validation metrics (nothing else was
    scored)."""
    best = next(h for h in history if h["epoch"] == best_epoch) if best_epoch else history[-1]
    return {"value": best[metric], "epoch": int(best["epoch"]), "epochs": len(history),
            "val": {k: v for k, v in best.items() if k.startswith("val_")}, "seconds": round(seconds, 1)}


def summary(state: dict[str, Any]) -> str:
    """The re-run trials by mean over their seeds, for the end of `dsgkd search`."""
    values: dict[str, list[float]] = {}
    for e in state["runs"]:
        if e.get("value") is not None:
            values.setdefault(e["trial_id"], []).append(e["value"])
    lines = [f"Reselect ({state['metric']} on {state['seeds']} fresh seed(s) each; search = the search's own run):"]
    for p in state["trials"]:
        got = values.get(p["trial_id"], [])
        mean = f"{sum(got) / len(got):.4f}" if got else "-"
        spread = f" ± {statistics.stdev(got):.4f}" if len(got) > 1 else ""
        lines.append(f"  {p['trial_id']}  {p['role']} #{p['search_rank']}  search {p['search_value']:.4f}  "
                     f"mean {mean}{spread} over {len(got)}/{len(p['seeds'])} seeds")
    return "\n".join(lines)
