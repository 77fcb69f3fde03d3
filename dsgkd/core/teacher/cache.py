"""The frozen teacher's signal, cached: computed once per (teacher, data, max_length, selector), read by every trial.

A search runs many trials against one frozen teacher on the same notes. Its pooled term vectors,
term-attention grids and logits do not depend on the student or the trial's temperature, so they are
written once (`write_cache`) and every trial reads them (`CachedTeacher`), returning the same
`TeacherOut` as the live path.

Layout (ragged, memory-mapped): only the terms a note has, and of those only the ones the teacher's
tokenization kept, are stored; nothing is padded to the widest note. Per split, as `.npy` files:

- `pooled` [layers, total_terms, D] fp16, layer-major, so a trial whose layer map reads a subset of the
  cached layers touches only those layers' pages;
- `grid` [attn_layers, heads, total_cells] fp16, note i's [k_i, k_i] term grid flattened at `grid_offsets[i]`;
- `term_offsets` [n + 1] and `term_pos` [total_terms] (each row's term index in its note), `grid_offsets`;
- `logits` [n, C] fp32 when the teacher has a task head.

Why `.npy` + `np.load(mmap_mode="r")` rather than safetensors: a safetensors file is written from tensors
held in RAM, while an `.npy` memmap is allocated on disk and filled batch by batch (the builder never holds
a full-size tensor), and read through the page cache, which concurrent trials on one node share; fp16
because numpy has no bf16 (the teacher is run in fp32, so fp16 loses less). meta.json records every file's
size and sha256 and is written last, after every file is complete: it is the cache's completion record. The
directory appears only when every file and meta.json are fsynced (`dsgkd.storage.staged_dir`). A reader refuses a
file of the wrong size, and `write_cache` re-hashes an existing cache and rebuilds it when anything differs (a
page zeroed by a power loss, a bad disk, a hand-edited file); a search runs `write_cache` for every cache its
trials and re-runs read before they start (`dsgkd.search.caches`), so they never read an unverified cache. The
memmaps are allocated on disk before they are filled, so a full disk is ENOSPC (one line) rather than SIGBUS.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from dsgkd.core.align import selector_identity
from dsgkd.core.encoded_notes import EncodedNotes
from dsgkd.core.features import collate, make_batches
from dsgkd.core.teacher.signal import TeacherOut, teacher_forward
from dsgkd.errors import UserError
from dsgkd.progress import Progress
from dsgkd.storage import content_key, file_sha256, staged_dir

CACHE_VERSION = 2


class CachedTeacher:
    """Reads a cache written by `write_cache`; rows are looked up by the note's index in its split."""

    def __init__(self, cache_dir: str | Path, layers: list[int], attn_layers: list[int], logits: bool):
        self.dir = Path(cache_dir)
        meta = read_meta(self.dir)
        missing = set(layers) - set(meta["layers"]) or set(attn_layers) - set(meta["attn_layers"])
        if missing or (logits and not meta["logits"]):
            raise UserError(f"teacher cache {self.dir}: lacks layers {sorted(missing)} or logits; rebuild it")
        bad = [name for name, size in meta["sizes"].items() if _size(self.dir / name) != size]
        if bad:
            raise UserError(f"teacher cache {self.dir}: {bad[0]} is truncated or damaged; delete the directory "
                            "(the next search rebuilds it) or pass --no-teacher-cache")
        self.layers, self.attn_layers, self.logits = layers, attn_layers, logits
        self._pos = [meta["layers"].index(x) for x in layers]
        self._attn_pos = [meta["attn_layers"].index(x) for x in attn_layers]
        self._splits = {s: {f: np.load(self.dir / f"{s}.{f}.npy", mmap_mode="r") for f in _files(meta)}
                        for s in meta["splits"]}

    def __call__(self, batch: dict, split: str) -> TeacherOut:
        store, idx = self._splits[split], batch["idx"].numpy()
        b, w = batch["term_mask"].shape
        starts, ends = store["term_offsets"][idx], store["term_offsets"][idx + 1]
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]).astype(np.int64)
        note = torch.from_numpy(np.repeat(np.arange(b), ends - starts))
        term = torch.from_numpy(store["term_pos"][rows].astype(np.int64))
        width = store["pooled"].shape[-1]
        pooled = torch.zeros(len(self._pos), b, w, width)
        if len(rows) and self._pos:
            pooled[:, note, term] = torch.from_numpy(np.stack([store["pooled"][p][rows] for p in self._pos])).float()
        grid = self._grid(store, idx, b, w) if self.attn_layers else None
        logits = torch.from_numpy(np.asarray(store["logits"][idx])).float() if self.logits else None
        dev = batch["term_mask"].device
        return TeacherOut(pooled.to(dev), None if grid is None else grid.to(dev),
                          None if logits is None else logits.to(dev), self.layers, self.attn_layers)

    def _grid(self, store: dict, idx: np.ndarray, b: int, w: int) -> torch.Tensor:
        cells, heads = store["grid_offsets"], store["grid"].shape[1]
        grid = torch.zeros(len(self._attn_pos), b, heads, w, w)
        for row, i in enumerate(idx):
            start, end = store["term_offsets"][i], store["term_offsets"][i + 1]
            k = int(end - start)
            if not k:
                continue
            pos = torch.from_numpy(store["term_pos"][start:end].astype(np.int64))
            block = np.stack([store["grid"][a, :, cells[i]:cells[i + 1]] for a in self._attn_pos])
            grid[:, row, :, pos[:, None], pos[None, :]] = torch.from_numpy(
                block.reshape(len(self._attn_pos), heads, k, k)).float()
        return grid


def cache_key(teacher_id: str, data_fingerprint: str, *, max_length: int, selector: str, max_terms: int,
              layers: list[int], attn_layers: list[int], logits: bool) -> str:
    return content_key([CACHE_VERSION, teacher_id, data_fingerprint, max_length, selector_identity(selector),
                        max_terms, sorted(layers), sorted(attn_layers), logits])


def read_meta(cache_dir: Path) -> dict:
    try:
        meta = json.loads((cache_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"teacher cache {cache_dir}: no readable meta.json; rebuild it") from None
    if meta.get("version") != CACHE_VERSION:
        raise UserError(f"teacher cache {cache_dir}: version {meta.get('version')}, expected {CACHE_VERSION}")
    return meta


def verify_cache(cache_dir: Path) -> bool:
    """Every file present with the size and sha256 meta.json recorded (reads the whole cache once)."""
    try:
        meta = read_meta(cache_dir)
    except UserError:
        return False
    return all(_size(cache_dir / name) == size and file_sha256(cache_dir / name) == meta["sha256"][name]
               for name, size in meta["sizes"].items())


def _files(meta: dict) -> list[str]:
    return ["term_offsets", "term_pos", "pooled"] + (["grid_offsets", "grid"] if meta["attn_layers"] else []) + \
        (["logits"] if meta["logits"] else [])


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else -1


def _write_split(model, tokenizer, examples: EncodedNotes, out: Path, split: str, *, layers: list[int],
                 attn_layers: list[int], logits: bool, batch_size: int, device: torch.device) -> None:
    """One split's signal, streamed batch by batch into on-disk memmaps sized from the notes' kept terms."""
    kept = [np.flatnonzero(ex["t_ok"]) for ex in examples]
    term_offsets = np.concatenate([[0], np.cumsum([len(k) for k in kept])]).astype(np.int64)
    grid_offsets = np.concatenate([[0], np.cumsum([len(k) ** 2 for k in kept])]).astype(np.int64)
    np.save(out / f"{split}.term_offsets.npy", term_offsets)
    np.save(out / f"{split}.term_pos.npy", np.concatenate([[]] + kept).astype(np.int16))
    files: dict[str, np.memmap] = {}
    batches = make_batches([len(ex["t_ids"]) for ex in examples], batch_size, shuffle=False)
    bar = Progress(len(batches), f"teacher cache: {split} notes", "batches")
    for idx in batches:
        bar.update()
        batch = collate([examples[i] for i in idx], None, tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        signal = teacher_forward(model, batch, layers, attn_layers, logits)
        if not files:
            files = _allocate(out, split, signal, int(term_offsets[-1]), int(grid_offsets[-1]), len(examples))
        pooled = signal.pooled.half().cpu().numpy()
        grid = signal.grid.half().cpu().numpy() if attn_layers else None
        for row, i in enumerate(idx):
            files["pooled"][:, term_offsets[i]:term_offsets[i + 1]] = pooled[:, row, kept[i]]
            if grid is not None:
                block = grid[:, row][:, :, kept[i]][:, :, :, kept[i]]
                files["grid"][:, :, grid_offsets[i]:grid_offsets[i + 1]] = block.reshape(*block.shape[:2], -1)
            if logits:
                files["logits"][i] = signal.logits[row].cpu().numpy()
    bar.close()
    if attn_layers:
        np.save(out / f"{split}.grid_offsets.npy", grid_offsets)
    for mm in files.values():
        mm.flush()
    del files


def _allocate(out: Path, split: str, signal: TeacherOut, n_terms: int, n_cells: int, n_notes: int) -> dict:
    def create(name: str, dtype, shape) -> np.memmap:
        path = out / f"{split}.{name}.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        _reserve(path)
        return mm

    files = {"pooled": create("pooled", np.float16, (len(signal.layers), n_terms, signal.pooled.shape[-1]))}
    if signal.grid is not None:
        files["grid"] = create("grid", np.float16, (len(signal.attn_layers), signal.grid.shape[2], n_cells))
    if signal.logits is not None:
        files["logits"] = create("logits", np.float32, (n_notes, signal.logits.shape[-1]))
    return files


def _reserve(path: Path) -> None:
    """Claim every block of a sparse memmap file now: filling a memmap on a full disk is SIGBUS, claiming its
    blocks is ENOSPC. File systems that cannot pre-allocate are left sparse."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def write_cache(model, tokenizer, notes_by_split: dict[str, EncodedNotes], out_dir: Path, *, key: str,
                layers: list[int], attn_layers: list[int], logits: bool, batch_size: int = 32,
                device: torch.device | None = None) -> Path:
    """Compute and store the teacher signal for every note of every split (`notes_by_split`: the notes encoded
    with the teacher's side, e.g. a search's note store); atomic, reused when it verifies."""
    final = Path(out_dir) / key
    if (final / "meta.json").is_file():
        if verify_cache(final):
            return final
        print(f"[dsgkd] teacher cache {final}: damaged (size or checksum); rebuilding it")
        shutil.rmtree(final, ignore_errors=True)
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    with staged_dir(final, exists="keep") as tmp:
        for split, notes in notes_by_split.items():
            _write_split(model, tokenizer, notes, tmp, split, layers=layers, attn_layers=attn_layers, logits=logits,
                         batch_size=batch_size, device=device)
        names = sorted(p.name for p in tmp.iterdir())
        meta = {"version": CACHE_VERSION, "layers": layers, "attn_layers": attn_layers, "logits": logits,
                "splits": list(notes_by_split), "n_notes": {s: len(n) for s, n in notes_by_split.items()},
                "sizes": {n: _size(tmp / n) for n in names}, "sha256": {n: file_sha256(tmp / n) for n in names}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return final
