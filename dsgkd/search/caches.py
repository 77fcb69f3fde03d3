"""The frozen teacher's signal, computed once per cache group before the trials that read it.

A cache group is everything but the layers that decides a trial's teacher signal: teacher, data,
tokenisation, and the seed where a fine-tuned or random-init teacher depends on it (a pretrained frozen
teacher does not, so reselect's re-runs on fresh seeds read the search's cache). RUN/teacher_cache/index.json
maps each group to its cache directory (named by content). The search builds the groups of its categorical
variants before the Tuner starts; reselect builds those its re-runs still lack. Both run the
builds as Ray tasks (on a GPU when the cluster has one), never in the driver between trials.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ray

from dsgkd.config import RunConfig
from dsgkd.pipeline.teachers import teacher_seeded
from dsgkd.search import distributed
from dsgkd.search.space import SearchSpace, setting
from dsgkd.storage import atomic_write_text, content_key


def cache_group(cfg: RunConfig) -> str:
    """Everything but the layers that decides a trial's teacher signal: teacher, data, tokenisation, and the
    seed where it changes the teacher."""
    return content_key([cfg.teacher.model_dump(mode="json"), cfg.data.model_dump(mode="json"),
                        cfg.train.seed if teacher_seeded(cfg) else None, cfg.train.max_length, cfg.distill.selector,
                        cfg.distill.max_terms], sort_keys=True)


def build_caches(space: SearchSpace, plans, run_dir: Path, variants: list[tuple[str, RunConfig]]) -> None:
    """The teacher signal of every cache group among `variants` ((pair, config)), for the union of the layers
    its pairs' maps can read, added to RUN/teacher_cache/index.json. A group already in the index keeps its
    entry: the search's set-up built it for every pair of the group, a later caller may know fewer pairs."""
    groups: dict[str, tuple[RunConfig, set[int]]] = {}
    for pair, cfg in variants:
        groups.setdefault(cache_group(cfg), (cfg, set()))[1].update(plans[pair].teacher_states)
    if not groups:
        return
    gpu = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    attention = _may_be_positive(space, "distill.beta")
    build = ray.remote(num_cpus=1, num_gpus=gpu)(_build_cache)
    dirs = ray.get([build.remote(cfg.model_dump(mode="json"), sorted(layers), str(run_dir / "teacher_cache"),
                                 attention) for cfg, layers in groups.values()])
    index_file = run_dir / "teacher_cache" / "index.json"
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else {}
    index = {group: Path(d).name for group, d in zip(groups, dirs)} | index
    atomic_write_text(index_file, json.dumps(index, indent=1))


def cache_dir(cfg: RunConfig, run_dir: Path) -> Path | None:
    index = run_dir / "teacher_cache" / "index.json"
    name = json.loads(index.read_text(encoding="utf-8")).get(cache_group(cfg)) if index.is_file() else None
    return run_dir / "teacher_cache" / name if name else None


def _build_cache(cfg: dict[str, Any], layers: list[int], out_dir: str, attention: bool) -> str:
    import torch

    from dsgkd.pipeline.teachers import build_cache

    distributed.quiet_transformers()
    device = torch.device("cuda") if torch.cuda.is_available() else None
    return str(build_cache(RunConfig.model_validate(cfg), layers, out_dir, attention=attention, device=device))


def _may_be_positive(space: SearchSpace, key: str) -> bool:
    declared = space.params.get(key)
    values = [setting(space.base, key)] if declared is None else declared.values()
    return any(v > 0 for v in values)
