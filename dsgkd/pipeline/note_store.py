"""A search's encoded notes: written once per (notes, tokenizers, term rule, length) before its trials, and
memory-mapped by every trial that reads them (`dsgkd.core.encoded_notes`).

Without a store each trial tokenised its KD pool and held the result in private memory, which grew with the
notes (+314 MB from 2,700 to 20,700 notes in one trial); and the set-up's peak was not told apart from the
trial's. A search's set-up tasks write the stores under RUN/note_store (`dsgkd.search.caches`), each in a
process that exits when its task ends; a trial opens them read-only. A trial that finds no store for its
config (a searched numeric data setting) writes it itself, so the store is never required, only shared.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from dsgkd.config import RunConfig
from dsgkd.core.encoded_notes import EncodedNotes
from dsgkd.core.features import encode_notes
from dsgkd.core.long_notes import Pieces, split_notes
from dsgkd.data.emr import Splits
from dsgkd.models.presets import resolve
from dsgkd.storage import content_key

STORE_DIR = "note_store"  # under RUN


def store_dir(run_dir: Path) -> Path:
    """Where a search keeps its encoded-note stores."""
    return Path(run_dir) / STORE_DIR


def tokenizer_identity(ref: str, tok) -> list:
    """What makes two tokenizers encode alike: where they come from (a stand-in's directory carries its content
    key) and their class and vocabulary size."""
    return [resolve(ref).source, type(tok).__name__, len(tok)]


def encoded(texts: Sequence[str], labels: Sequence[int] | None, sides: dict[str, tuple[str, object]], *,
            cfg: RunConfig, store: Path | None) -> EncodedNotes:
    """`encode_notes` for `sides` ({"s"|"t": (ref, tokenizer)}), read from (or first written to) the store
    under `store` when given, else held in memory."""
    d, t = cfg.distill, cfg.train
    tokens = {side: tok for side, (_, tok) in sides.items()}

    def encode() -> EncodedNotes:
        return encode_notes(texts, labels, tokens.get("s"), tokens.get("t"), selector=d.selector,
                            max_terms=d.max_terms, max_length=t.max_length)

    if store is None:
        return encode()
    digest = hashlib.sha256(json.dumps([list(texts), None if labels is None else [int(x) for x in labels]]).encode())
    key = content_key([digest.hexdigest(), {side: tokenizer_identity(ref, tok) for side, (ref, tok) in sides.items()},
                       d.selector, d.max_terms, t.max_length])
    target = Path(store) / key
    notes = EncodedNotes.open(target)
    if notes is None:
        if target.exists():
            print(f"[dsgkd] note store {target}: damaged (checksum); writing it again")
        encode().save(target, replace=target.exists())
        notes = EncodedNotes.open(target)
    return notes


def train_pool(cfg: RunConfig, splits: Splits, transfer_texts: list[str], student_tok) -> tuple[Pieces, list[int]]:
    """The KD pool and its labels: labelled training notes first, then the unlabeled transfer notes (label -1),
    cut into pieces by `train.long_notes` with the student's tokenizer (a teacher cache cuts them the same way)."""
    pool = split_notes(list(splits.train["text"]) + list(transfer_texts), student_tok, cfg.train.max_length,
                       cfg.train.long_notes)
    return pool, pool.expand(list(splits.train["label"]) + [-1] * len(transfer_texts))


def encode_pool(cfg: RunConfig, splits: Splits, transfer: list[str], student_tok, teacher_tok, *,
                store: Path | None = None, sides: Sequence[str] = ("s", "t")) -> EncodedNotes:
    """The KD pool (`train_pool`) encoded for the `sides` whose tokenizer is given. A search's trials and its
    teacher-cache builds read one store, written once with both sides (a cache build without a store encodes only
    the teacher's)."""
    pool, labels = train_pool(cfg, splits, transfer, student_tok)
    tokens = {"s": (cfg.student.ref, student_tok), "t": (cfg.teacher.ref, teacher_tok)}
    return encoded(pool.texts, labels, {side: tokens[side] for side in sides if tokens[side][1] is not None},
                   cfg=cfg, store=store)


def encode_run_notes(cfg: RunConfig, splits: Splits, transfer: list[str], student_tok, teacher_tok, *,
                     store: Path | None = None) -> tuple[EncodedNotes, Pieces, EncodedNotes]:
    """The run's KD pool (`train_pool`) encoded with both tokenizers given, and its validation pieces and notes
    with the student's.

    A run that names transfer notes batches them whether KD is on or off (they add no CE), so a
    KD-off control with the same data takes the same optimiser steps over the same batches as its DSG-KD arm.
    With a `store`, the pool is encoded for the teacher's tokenizer whether KD is on or not, so the KD-off and
    KD-on trials of a search share one store."""
    t = cfg.train
    train = encode_pool(cfg, splits, transfer, student_tok, teacher_tok, store=store)
    val_pieces = split_notes(list(splits.val["text"]), student_tok, t.max_length, t.long_notes)
    val = encoded(val_pieces.texts, val_pieces.expand(list(splits.val["label"])),
                  {"s": (cfg.student.ref, student_tok)}, cfg=cfg, store=store)
    return train, val_pieces, val


def store_variant(cfg: RunConfig) -> str:
    """What decides a config's stores (data, both models, term rule, length, long-note mode): one set-up task
    per distinct value."""
    return content_key([cfg.data.model_dump(mode="json"), cfg.student.ref, cfg.teacher.ref, cfg.distill.selector,
                        cfg.distill.max_terms, cfg.train.max_length, cfg.train.long_notes])
