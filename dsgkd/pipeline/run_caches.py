"""The frozen teachers' signal for a set of runs (a table's rows, the seeds × arms of `dsgkd train --seeds`),
cached once per cache group before the runs start.

A search's trials read their teachers from RUN/teacher_cache (`dsgkd.search.caches`); a table's rows used to run
them live, every teacher's forward at every step of every seed: a third of a KD row's training loop on 2 cores
(docs/benchmarks.md). The pretrained teacher's signal is the same for every seed and a fine-tuned or random-init
teacher's the same for every run of one seed (`dsgkd.pipeline.teacher_cache.cache_group`), so the teachers are
forwarded once per group here, by worker processes side by side, and each run then reads them exactly as a
search's trial does: the searched config is run on the signal it was chosen on. A table keeps the caches and their
index in the rows' folder (`PAIR/teacher_cache`), so a resumed table reuses them after re-hashing them.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dsgkd.config import RunConfig
from dsgkd.core.layer_maps import resolve_layer_map
from dsgkd.core.terms import weighted_reads, weighted_sources
from dsgkd.models.shape import model_depth
from dsgkd.pipeline.teacher_cache import cache_dirs, cache_group, caches_dir, index_key, record_caches
from dsgkd.pipeline.workers import worker_pool


def teacher_layers(cfg: RunConfig) -> set[int]:
    """The teacher states `cfg`'s layer map pairs with student layers (what its hidden and attention terms read)."""
    depths = model_depth(cfg.teacher.ref), model_depth(cfg.student.ref)
    return {t for t, _ in resolve_layer_map(cfg.distill.layer_map, *depths)}


def plan(configs: list[RunConfig]) -> dict[tuple[str, str], tuple[RunConfig, list[int], bool]]:
    """(cache group, teacher source) → (a config of the group, the union of the teacher layers its members read of
    that source, whether any member reads that teacher's attentions), over the KD configs among `configs`. A
    teacher read for its logits alone keeps only its last state (the format holds at least one layer; every layer
    would make each seed's fine-tuned cache as large as the pretrained one). Planned over every row of the table,
    done or not, so a resumed table asks for the same caches (a cache's key holds its layers)."""
    groups: dict[tuple[str, str], list] = {}
    for cfg in configs:
        if not cfg.distill.kd_on:
            continue
        for source in weighted_sources(cfg.distill):
            entry = groups.setdefault((cache_group(cfg), source), [cfg, set(), False])
            if weighted_reads(cfg.distill, source, {"hidden_states", "attentions"}):
                entry[1] |= teacher_layers(cfg)
            entry[2] = entry[2] or weighted_reads(cfg.distill, source, {"attentions"})
    return {key: (cfg, sorted(layers or {model_depth(cfg.teacher.ref)}), attention)
            for key, (cfg, layers, attention) in groups.items()}


def _build_one(cfg_yaml: str, layers: list[int], out_dir: str, source: str, attention: bool) -> str:
    """One cache in a worker process (its threads set by the pool), on the run's device."""
    import transformers
    import yaml

    from dsgkd.core.steps import pick_device
    from dsgkd.pipeline.teacher_cache import build_cache

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    cfg = RunConfig.from_dict(yaml.safe_load(cfg_yaml), source=out_dir)
    device = pick_device(cfg.train.device)
    return str(build_cache(cfg, layers, out_dir, source=source, attention=attention,
                           device=None if device.type == "cpu" else device))


def submit(configs: list[RunConfig], root: Path, pool) -> Callable[[], None]:
    """Start building (or verifying and reusing) every cache the KD configs among `configs` read, under
    `root`/teacher_cache, on `pool` (the fine-tuned teachers' first: a fine-tune is the longest build); the call
    returned waits for them and records them in its index.json."""
    groups = plan(configs)
    keys = sorted(groups, key=lambda key: (key[1] != "finetuned", key))
    out = str(caches_dir(root))
    futures = [pool.submit(_build_one, groups[k][0].dump_yaml(), groups[k][1], out, k[1], groups[k][2]) for k in keys]

    def wait_and_record() -> None:
        if futures:
            record_caches(root, {index_key(group, source): f.result() for (group, source), f in zip(keys, futures)})

    return wait_and_record


def build(configs: list[RunConfig], root: Path, workers: int) -> None:
    """`submit` on `workers` processes of one thread each, and wait for the caches."""
    groups = plan(configs)
    if groups:
        with worker_pool(max(1, min(workers, len(groups))), threads=1) as pool:
            submit(configs, root, pool)()


def row_cache(cfg: RunConfig, root: Path) -> dict[str, str] | None:
    """The caches (source → directory) a run reads, as plain strings for a worker; None for a KD-off run."""
    if not cfg.distill.kd_on:
        return None
    dirs = cache_dirs(cfg, root)
    if dirs is None:
        raise RuntimeError(f"no teacher cache under {caches_dir(root)} for this run: build() first")
    return {source: str(d) for source, d in dirs.items()}
