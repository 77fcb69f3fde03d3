"""Notes → token ids and term spans for both tokenizers, computed once; batches with dynamic padding.

Each note is tokenised once per side with offsets, its terms found once (`align.find_terms`) and mapped
to token spans on both sides. The term list depends only on the text, so term w of a note means the
same word for teacher and student, and for a teacher cache built without knowing the student.

The notes come back as `EncodedNotes`: flat int32/bool arrays and offsets, not a dict of small arrays per
note (a 20,000-note KD pool held ~4 KB of headers per note in every trial), memory-mapped from a store when
a search wrote one (`dsgkd.pipeline.note_store`); notes are tokenised in chunks, so the tokenizer's per-token
strings never exist for all at once.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

from dsgkd.core.align import char_to_token_spans, find_terms
from dsgkd.core.encoded_notes import EncodedNotes


CHUNK = 1024  # notes per tokenizer call


def encode_side(tokenizer, texts: Sequence[str], terms: Sequence[list[tuple[int, int]]], max_length: int) -> dict:
    """Token ids, per-term token spans ((0, 0) where absent) and a kept-mask for one tokenizer."""
    ids, spans, ok = [], [], []
    for start in range(0, len(texts), CHUNK):
        enc = tokenizer(list(texts[start:start + CHUNK]), truncation=True, max_length=max_length,
                        return_offsets_mapping=True)
        for row, offsets, note_terms in zip(enc["input_ids"], enc["offset_mapping"], terms[start:start + CHUNK]):
            mapped = char_to_token_spans(offsets, note_terms)
            ids.append(np.asarray(row, dtype=np.int32))
            spans.append(np.asarray([s if s is not None else (0, 0) for s in mapped], dtype=np.int32).reshape(-1, 2))
            ok.append(np.asarray([s is not None for s in mapped], dtype=bool))
    return {"ids": ids, "spans": spans, "ok": ok}


def encode_notes(texts: Sequence[str], labels: Sequence[int] | None, student_tok, teacher_tok, *,
                 selector: str, max_terms: int, max_length: int) -> EncodedNotes:
    """Each note with `s_*` / `t_*` fields for each side given (None skips that side), as flat arrays."""
    terms = [find_terms(t, selector, max_terms) for t in texts]
    sides = {prefix: encode_side(tok, texts, terms, max_length)
             for prefix, tok in (("s", student_tok), ("t", teacher_tok)) if tok is not None}
    return EncodedNotes.from_rows([-1] * len(texts) if labels is None else labels, sides)


def note_lengths(examples: EncodedNotes | Sequence[dict], side: str = "s") -> Sequence[int]:
    """Tokens per note on one side, without building a dict per note where the notes are flat arrays."""
    if isinstance(examples, EncodedNotes):
        return examples.lengths(side)
    return [len(ex[f"{side}_ids"]) for ex in examples]


def example_labels(examples: EncodedNotes | Sequence[dict]) -> np.ndarray:
    """Each note's label (-1: unlabeled transfer note)."""
    if isinstance(examples, EncodedNotes):
        return np.asarray(examples.labels)
    return np.asarray([ex["label"] for ex in examples], dtype=np.int64)


def make_batches(lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0,
                 bucket: bool = True, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Index batches; with `bucket`, notes of similar length share a batch so padding stays small.

    Shuffled notes are sorted by length inside pools of 50 batches, cut into batches, and the batches
    shuffled again, which keeps the order random across epochs but the padding local. With several
    ranks every rank gets the same number of batches (wrapping around), as DDP needs.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    if bucket:
        pool = batch_size * 50
        order = [i for k in range(0, len(order), pool)
                 for i in sorted(order[k:k + pool], key=lambda j: lengths[j])]
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    if world > 1:
        per_rank = -(-len(batches) // world)
        batches = [batches[k % len(batches)] for k in range(per_rank * world)]
        batches = batches[rank::world]
    return batches


def epoch_batches(labels: np.ndarray, lengths: Sequence[int], batch_size: int, *, alongside: bool, kd_on: bool,
                  shuffle: bool, seed: int = 0, bucket: bool = True, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """An epoch's index batches (`train.transfer_batching`). Mixed: one pool, labelled and transfer notes alike.
    Alongside: the labelled notes batched alone, in the order a run without transfer notes takes them (so a KD-off
    control is a plain fine-tune, step for step), and with KD on each batch gets its share of the transfer notes
    beside it, every transfer note once an epoch."""
    if not alongside:
        return make_batches(lengths, batch_size, shuffle=shuffle, seed=seed, bucket=bucket, rank=rank, world=world)
    labelled, transfer = np.flatnonzero(labels >= 0), np.flatnonzero(labels < 0)
    batches = _sub_batches(labelled, lengths, batch_size, shuffle, seed, bucket, rank, world)
    if not kd_on or not len(transfer):
        return batches
    share = -(-len(transfer) // -(-len(labelled) // batch_size))
    beside = _sub_batches(transfer, lengths, share, shuffle, seed + 1, bucket, rank, world)
    return [b + (beside[k] if k < len(beside) else []) for k, b in enumerate(batches)]


def _sub_batches(indices: np.ndarray, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int,
                 bucket: bool, rank: int, world: int) -> list[list[int]]:
    """`make_batches` over a subset of the notes, as indices into all of them."""
    sub = make_batches([lengths[i] for i in indices], batch_size, shuffle=shuffle, seed=seed, bucket=bucket,
                       rank=rank, world=world)
    return [[int(indices[j]) for j in b] for b in sub]


def _pad(rows: list[np.ndarray], pad_id: int, to: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    width = to or max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.from_numpy(np.asarray(r, dtype=np.int64))
        mask[i, :len(r)] = 1
    return ids, mask


def _spans(rows: list[np.ndarray], width: int) -> torch.Tensor:
    out = torch.zeros((len(rows), width, 2), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, :len(r)] = torch.from_numpy(np.asarray(r, dtype=np.int64))
    return out


def collate(examples: list[dict], s_pad: int | None, t_pad: int | None = None,
            pad_to: int | None = None) -> dict:
    """Pad a batch to its longest note (or `pad_to`) per side given a pad id; terms padded to the most
    terms in the batch, kept only where every side present kept them."""
    w = max(1, max(ex["n_terms"] for ex in examples))
    batch = {"idx": torch.tensor([ex["idx"] for ex in examples]),
             "labels": torch.tensor([ex["label"] for ex in examples])}
    ok = torch.ones((len(examples), w), dtype=torch.bool)
    for prefix, pad in (("s", s_pad), ("t", t_pad)):
        if pad is None:
            continue
        ids, mask = _pad([ex[f"{prefix}_ids"] for ex in examples], pad, pad_to)
        batch.update({f"{prefix}_ids": ids, f"{prefix}_mask": mask,
                      f"{prefix}_spans": _spans([ex[f"{prefix}_spans"] for ex in examples], w)})
        side_ok = torch.zeros((len(examples), w), dtype=torch.bool)
        for i, ex in enumerate(examples):
            side_ok[i, :len(ex[f"{prefix}_ok"])] = torch.from_numpy(np.array(ex[f"{prefix}_ok"], dtype=bool))
        ok &= side_ok
    batch["term_mask"] = ok
    return batch
