"""The teacher caches of a search, built as Ray tasks (on a GPU when the cluster has one) before the trials
that read them, never in the driver between trials.

What a cache group is, RUN/teacher_cache/index.json and the build itself are `dsgkd.pipeline.teacher_cache`.
The search builds the groups of its categorical variants before the Tuner starts; reselect builds those its
re-runs still lack.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ray

from dsgkd.config import RunConfig
from dsgkd.core.terms import registered
from dsgkd.pipeline.teacher_cache import cache_group, caches_dir, index_key, plan_groups, record_caches
from dsgkd.search import distributed
from dsgkd.search.space import SearchSpace, setting


def build_caches(space: SearchSpace, plans, run_dir: Path, variants: list[tuple[str, RunConfig]]) -> None:
    """The teacher signal of every cache group among `variants` ((pair, config)), of each teacher (pretrained,
    fine-tuned) some trial of the group may read, for the union of the layers its pairs' maps can read, added to
    RUN/teacher_cache/index.json (`record_caches`)."""
    groups = plan_groups(variants, {pair: plans[pair].teacher_states for pair, _ in variants})
    if not groups:
        return
    read: dict[str, set[str]] = {}
    for _, cfg in variants:
        read.setdefault(cache_group(cfg), set()).update(_sources(space, cfg))
    jobs = [(group, source, cfg, layers) for group, (cfg, layers) in groups.items() for source in sorted(read[group])]
    gpu = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    build = ray.remote(num_cpus=1, num_gpus=gpu)(_build_cache)
    dirs = ray.get([build.remote(cfg.model_dump(mode="json"), layers, str(caches_dir(run_dir)), source,
                                 _attention(space, cfg, source)) for _, source, cfg, layers in jobs])
    record_caches(run_dir, {index_key(group, source): d for (group, source, _, _), d in zip(jobs, dirs)})


def _sources(space: SearchSpace, cfg: RunConfig) -> set[str]:
    """The teachers the terms that may be on in some trial of this variant read."""
    return {term.source(cfg.distill) for term in registered() if _may_be_positive(space, f"distill.{term.weight}")}


def _attention(space: SearchSpace, cfg: RunConfig, source: str) -> bool:
    """Whether a trial may distil this teacher's attentions."""
    return any(_may_be_positive(space, f"distill.{term.weight}") for term in registered()
               if "attentions" in term.teacher_outputs and term.source(cfg.distill) == source)


def _build_cache(cfg: dict[str, Any], layers: list[int], out_dir: str, source: str, attention: bool) -> str:
    import torch

    from dsgkd.pipeline.teacher_cache import build_cache

    distributed.quiet_transformers()
    device = torch.device("cuda") if torch.cuda.is_available() else None
    return str(build_cache(RunConfig.model_validate(cfg), layers, out_dir, source=source, attention=attention,
                           device=device))


def _may_be_positive(space: SearchSpace, key: str) -> bool:
    declared = space.params.get(key)
    values = [setting(space.base, key)] if declared is None else declared.values()
    return any(v > 0 for v in values)
