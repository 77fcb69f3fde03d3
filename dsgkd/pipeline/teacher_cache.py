"""The teacher-signal cache from a config: which cache a run reads, and building it.

The format, its writer and its reader are `dsgkd.core.teacher.cache`; this module decides what goes into a
cache. A cache group is everything but the layers that decides a trial's teacher signal: teacher, data,
tokenisation, and the seed where a fine-tuned or random-init teacher depends on it (a pretrained frozen
teacher does not, so reselect's re-runs on fresh seeds read the search's cache). RUN/teacher_cache/index.json
maps each group and teacher ("<group>/pretrained", "<group>/finetuned") to its cache directory (named by
content). A search plans its groups here
(`plan_groups`) and runs `build_cache` for each as a Ray task (`dsgkd.search.caches`).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from dsgkd.config import RunConfig
from dsgkd.core.layer_maps import attention_states
from dsgkd.core.teacher.cache import cache_key, verify_cache, write_cache
from dsgkd.core.terms import weighted_reads, weighted_sources
from dsgkd.data.emr import load_splits
from dsgkd.errors import UserError
from dsgkd.models.shape import model_depth
from dsgkd.models.load import load_tokenizer
from dsgkd.pipeline.note_store import encode_pool
from dsgkd.pipeline.prepare import load_teacher, load_transfer
from dsgkd.pipeline.teachers import finetuned_teacher_dir, teacher_identity, teacher_seeded
from dsgkd.storage import atomic_write_text, content_key

CACHE_DIR = "teacher_cache"  # under RUN
INDEX = "index.json"


def cache_group(cfg: RunConfig) -> str:
    """Everything but the layers that decides a trial's teacher signal: teacher, data, tokenisation, and the
    seed where it changes the teacher."""
    return content_key([cfg.teacher.model_dump(mode="json"), cfg.data.model_dump(mode="json"),
                        cfg.train.seed if teacher_seeded(cfg) else None, cfg.train.max_length, cfg.distill.selector,
                        cfg.distill.max_terms, *_pieces_identity(cfg)], sort_keys=True)


def _pieces_identity(cfg: RunConfig) -> list[str]:
    """What cuts long notes into pieces besides the notes: nothing when they are truncated, else the mode and the
    student whose tokenizer cuts them (`core.long_notes`)."""
    return [] if cfg.train.long_notes == "truncate" else [cfg.train.long_notes, cfg.student.ref]


def plan_groups(variants: Iterable[tuple[str, RunConfig]],
                teacher_layers: Mapping[str, Iterable[int]]) -> dict[str, tuple[RunConfig, list[int]]]:
    """The cache groups among `variants` ((pair, config)): group → (a config of the group, the union of the
    teacher layers its pairs' maps can read, sorted). `teacher_layers`: pair → those layers."""
    groups: dict[str, tuple[RunConfig, set[int]]] = {}
    for pair, cfg in variants:
        groups.setdefault(cache_group(cfg), (cfg, set()))[1].update(teacher_layers[pair])
    return {group: (cfg, sorted(layers)) for group, (cfg, layers) in groups.items()}


def caches_dir(run_dir: Path) -> Path:
    """Where a search keeps its teacher caches and their index."""
    return Path(run_dir) / CACHE_DIR


def record_caches(run_dir: Path, built: Mapping[str, str | Path]) -> None:
    """Add the caches `built` (group → cache directory) to RUN/teacher_cache/index.json. A group already in the
    index keeps its entry: the search's set-up built it for every pair of the group, a later caller may know
    fewer pairs."""
    index_file = caches_dir(run_dir) / INDEX
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else {}
    index = {group: Path(d).name for group, d in built.items()} | index
    atomic_write_text(index_file, json.dumps(index, indent=1))


def drop_damaged_caches(run_dir: Path) -> list[str]:
    """Remove from RUN/teacher_cache/index.json (and from disk) every cache that fails `verify_cache` (a page
    zeroed by a power loss, a file cut short), so the next `build_caches` computes it again; returns the index
    entries dropped. Reads every cache once."""
    index_file = caches_dir(run_dir) / INDEX
    if not index_file.is_file():
        return []
    index = json.loads(index_file.read_text(encoding="utf-8"))
    damaged = {name for name in set(index.values()) if not verify_cache(caches_dir(run_dir) / name)}
    if not damaged:
        return []
    for name in sorted(damaged):
        print(f"[dsgkd] teacher cache {caches_dir(run_dir) / name}: damaged (size or checksum); rebuilding it")
        shutil.rmtree(caches_dir(run_dir) / name, ignore_errors=True)
    dropped = sorted(key for key, name in index.items() if name in damaged)
    atomic_write_text(index_file, json.dumps({k: v for k, v in index.items() if v not in damaged}, indent=1))
    return dropped


def index_key(group: str, source: str) -> str:
    """A cache's entry in RUN/teacher_cache/index.json: its group and which teacher (SOURCES) it holds."""
    return f"{group}/{source}"


def cache_dirs(cfg: RunConfig, run_dir: Path) -> dict[str, Path] | None:
    """The caches of every teacher `cfg`'s KD terms read (source → directory) from RUN/teacher_cache/index.json;
    None when the search built none for one of them."""
    index_file = caches_dir(run_dir) / INDEX
    index = json.loads(index_file.read_text(encoding="utf-8")) if index_file.is_file() else {}
    names = {source: index.get(index_key(cache_group(cfg), source)) for source in weighted_sources(cfg.distill)}
    if not names or not all(names.values()):
        return None
    return {source: caches_dir(run_dir) / name for source, name in names.items()}


def build_cache(cfg: RunConfig, layers: list[int], out_dir: str | Path, *, source: str | None = None,
                attention: bool | None = None, device: torch.device | None = None, store: Path | None = None) -> Path:
    """Teacher signal for the KD pool (train + transfer notes) of `cfg`, for the given teacher layers, of the
    teacher `source` names ("pretrained", "finetuned"; default: the one `cfg`'s KD terms read). The fine-tuned
    copy's cache holds its logits.

    `attention` defaults to whether an enabled KD term reads the teacher's attentions; a search passes True when
    any trial may ask for them.
    `store`: a search's RUN/note_store, whose KD pool (written by its set-up before the caches) is read rather
    than tokenised again. Returns the cache directory (reused when it already exists for the same key).
    """
    depth = model_depth(cfg.teacher.ref)
    if max(layers) > depth:
        raise UserError(f"teacher cache: layer {max(layers)} out of range for '{cfg.teacher.ref}' (0..{depth})")
    splits = load_splits(cfg.data)
    transfer = load_transfer(cfg)
    if source is None:
        read = weighted_sources(cfg.distill) or ["pretrained"]
        if len(read) > 1:
            raise ValueError(f"the KD terms read the {' and '.join(read)} teachers: build a cache per source=")
        source = read[0]
    if attention is None:
        attention = weighted_reads(cfg.distill, source, {"attentions"})
    tuned = source == "finetuned"
    teacher_dir = finetuned_teacher_dir(cfg, splits) if tuned else None
    tok, model = load_teacher(cfg, attention=attention, teacher_dir=teacher_dir)
    attn_layers = attention_states(layers) if attention else []
    d = cfg.distill
    # the pool is the labelled training notes and the transfer notes, so the test split is no part of the key; a
    # JSON list, not joined text, so notes that contain newlines cannot make two pools one key
    fp = content_key([splits.fit_fingerprint, transfer, _pieces_identity(cfg)], length=64)
    key = cache_key(teacher_identity(cfg, source), fp, max_length=cfg.train.max_length, selector=d.selector,
                    max_terms=d.max_terms, layers=sorted(layers), attn_layers=attn_layers,
                    logits=tuned)
    if verify_cache(Path(out_dir) / key):
        return Path(out_dir) / key
    pool = encode_pool(cfg, splits, transfer, load_tokenizer(cfg.student.ref), tok, store=store,
                       sides=("s", "t") if store is not None else ("t",))
    return write_cache(model, tok, {"train": pool}, Path(out_dir), key=key, layers=sorted(layers),
                       attn_layers=attn_layers, logits=tuned, device=device)
