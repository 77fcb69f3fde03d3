"""Encoded notes as flat arrays plus offsets, in memory or memory-mapped from a store written once.

A KD pool of 20,000 notes held as one dict of small numpy arrays per note cost every trial ~4 KB of private
memory per note (dict and array headers dominate the ids), so a trial's memory grew with the notes. Here each
field is one flat array for all notes (token ids, term spans, kept-masks) with one offsets array per length
(tokens per side, terms per note); `EncodedNotes[i]` builds note i's dict only when a batch asks for it.

`save` writes the arrays as `.npy` files into a directory made whole by an atomic rename; `open` maps them
read-only, so the pages are file-backed and shared by every trial on a node that reads the same store, and a
trial's private memory does not grow with the notes. A search writes its stores before the trials start
(`dsgkd.pipeline.note_store`), in set-up tasks that free their memory when they end.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsgkd.storage import file_sha256, staged_dir

META = "notes.json"
SIDES = ("s", "t")  # student, teacher


class EncodedNotes(Sequence):
    """Notes → `{"idx", "label", "n_terms", "<side>_ids", "<side>_spans", "<side>_ok"}` for each side held."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.sides = [s for s in SIDES if f"{s}_ids" in arrays]

    @classmethod
    def from_rows(cls, labels: Sequence[int], sides: dict[str, dict[str, list[np.ndarray]]]) -> EncodedNotes:
        """From per-note arrays (`sides`: side → {"ids", "spans", "ok"}, one array per note)."""
        arrays = {"label": np.asarray(labels, dtype=np.int64).reshape(-1)}
        for side, enc in sides.items():
            arrays[f"{side}_ids"], arrays[f"{side}_ids_off"] = _flatten(enc["ids"], np.int32, (0,))
            arrays[f"{side}_spans"], term_off = _flatten(enc["spans"], np.int32, (0, 2))
            arrays[f"{side}_ok"], _ = _flatten(enc["ok"], bool, (0,))
            arrays.setdefault("term_off", term_off)
        if "term_off" not in arrays:
            arrays["term_off"] = np.zeros(len(arrays["label"]) + 1, dtype=np.int64)
        return cls(arrays)

    def __len__(self) -> int:
        return len(self.arrays["label"])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        a = self.arrays
        t0, t1 = a["term_off"][i], a["term_off"][i + 1]
        ex = {"idx": i, "label": int(a["label"][i]), "n_terms": int(t1 - t0)}
        for side in self.sides:
            off = a[f"{side}_ids_off"]
            ex.update({f"{side}_ids": a[f"{side}_ids"][off[i]:off[i + 1]], f"{side}_spans": a[f"{side}_spans"][t0:t1],
                       f"{side}_ok": a[f"{side}_ok"][t0:t1]})
        return ex

    @property
    def labels(self) -> np.ndarray:
        return self.arrays["label"]

    def lengths(self, side: str = "s") -> np.ndarray:
        """Tokens per note on one side (what batches are bucketed by)."""
        return np.diff(self.arrays[f"{side}_ids_off"])

    def kept_terms(self) -> np.ndarray:
        """Per note, how many terms are kept on every side held (what KD can distil)."""
        ok = np.logical_and.reduce([np.asarray(self.arrays[f"{s}_ok"]) for s in self.sides]) if self.sides else \
            np.zeros(int(self.arrays["term_off"][-1]), dtype=bool)
        running = np.concatenate([[0], np.cumsum(ok, dtype=np.int64)])
        off = self.arrays["term_off"]
        return running[off[1:]] - running[off[:-1]]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def save(self, directory: str | Path, *, replace: bool = False) -> Path:
        """Write the arrays and their checksums into `directory`, whole or not at all. The first writer wins when
        several trials or set-up tasks write the same store at once (it is keyed by content); `replace` swaps out
        a damaged one."""
        directory = Path(directory)
        with staged_dir(directory, exists="replace" if replace else "keep") as stage:
            for name, array in self.arrays.items():
                np.save(stage / f"{name}.npy", np.ascontiguousarray(array))
            (stage / META).write_text(json.dumps({"notes": len(self), "sha256": {
                name: file_sha256(stage / f"{name}.npy") for name in sorted(self.arrays)}}))
        return directory

    @classmethod
    def open(cls, directory: str | Path) -> EncodedNotes | None:
        """The store in `directory`, memory-mapped read-only; None when it is missing, or when a file differs
        from the checksum written with it (cut short, a page zeroed by a power loss). Every trial and rank
        verifies what it maps rather than trusting the set-up's check: 0.14 s for a 186 MB store (87,759 notes
        of 256 tokens, `benchmarks/store_open.py`), against training on wrong token ids."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / META).read_text(encoding="utf-8"))
            if any(file_sha256(directory / f"{name}.npy") != digest for name, digest in meta["sha256"].items()):
                return None
            store = cls({name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in meta["sha256"]})
        except (OSError, ValueError, KeyError):
            return None
        return store if len(store) == meta["notes"] else None


def _flatten(rows: list[np.ndarray], dtype, empty_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One array of all rows and the offsets where each starts (len(rows) + 1 of them)."""
    off = np.zeros(len(rows) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(r) for r in rows])
    flat = np.concatenate([np.asarray(r, dtype=dtype).reshape(-1, *empty_shape[1:]) for r in rows]) if rows and \
        off[-1] else np.zeros(empty_shape, dtype=dtype)
    return flat, off
