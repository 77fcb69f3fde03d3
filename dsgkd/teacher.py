"""The frozen teacher's signal, live or cached: the losses never know which.

A search runs many trials against one frozen teacher on the same notes. Its pooled term vectors,
term-attention grids and logits depend only on (teacher, data, max_length, term selector), not on the
student or the trial's temperature, so they are computed once, written as safetensors, and every trial
reads them (`CachedTeacher`). `LiveTeacher` runs the forward pass inside the training loop instead.
Both return the same `TeacherOut`; the term axis is the note's `find_terms` order, so the student's
tokenizer only decides which of those terms are masked out.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dsgkd.align import selector_identity
from dsgkd.errors import UserError
from dsgkd.features import collate, encode_notes, make_batches
from dsgkd.losses import attention_grid, pool_spans

CACHE_VERSION = 1
FORWARD_LOG_ENV = "DSGKD_TEACHER_FORWARD_LOG"


@dataclass
class TeacherOut:
    pooled: torch.Tensor               # [len(layers), B, W, D] in the order of `layers`
    grid: torch.Tensor | None          # [len(attn_layers), B, H, W, W] unnormalised term attention
    logits: torch.Tensor | None        # [B, C]
    layers: list[int]
    attn_layers: list[int]

    def pooled_for(self, layers: list[int]) -> torch.Tensor:
        return self.pooled[[self.layers.index(x) for x in layers]]

    def grid_for(self, layers: list[int]) -> torch.Tensor:
        return self.grid[[self.attn_layers.index(x) for x in layers]]


def _log_forward(n_notes: int) -> None:
    """Append one line per teacher forward pass to $DSGKD_TEACHER_FORWARD_LOG (counted across processes)."""
    path = os.environ.get(FORWARD_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {n_notes}\n")


@torch.no_grad()
def teacher_forward(model, batch: dict, layers: list[int], attn_layers: list[int], logits: bool) -> TeacherOut:
    """One frozen forward on the teacher side of a collated batch, pooled to terms."""
    out = model(input_ids=batch["t_ids"], attention_mask=batch["t_mask"], output_hidden_states=True,
                output_attentions=bool(attn_layers))
    _log_forward(batch["t_ids"].shape[0])
    states = torch.stack([out.hidden_states[i] for i in layers])
    pooled = pool_spans(states, batch["t_spans"]).float()
    grid = None
    if attn_layers:
        attn = torch.stack([out.attentions[i - 1] for i in attn_layers])
        grid = attention_grid(attn, batch["t_spans"]).float()
    return TeacherOut(pooled, grid, out.logits.float() if logits else None, list(layers), list(attn_layers))


class LiveTeacher:
    """Runs the frozen teacher on each batch (the `--no-teacher-cache` path, and plain `dsgkd train`)."""

    def __init__(self, model, layers: list[int], attn_layers: list[int], logits: bool):
        self.model = model.eval().requires_grad_(False)
        self.layers, self.attn_layers, self.logits = layers, attn_layers, logits

    def __call__(self, batch: dict, split: str) -> TeacherOut:
        return teacher_forward(self.model, batch, self.layers, self.attn_layers, self.logits)


class CachedTeacher:
    """Reads a cache written by `build_cache`; rows are looked up by the note's index in its split."""

    def __init__(self, cache_dir: str | Path, layers: list[int], attn_layers: list[int], logits: bool):
        self.dir = Path(cache_dir)
        meta = json.loads((self.dir / "meta.json").read_text())
        missing = set(layers) - set(meta["layers"]) or set(attn_layers) - set(meta["attn_layers"])
        if missing or (logits and not meta["logits"]):
            raise UserError(f"teacher cache {self.dir}: lacks layers {sorted(missing)} or logits; rebuild it")
        self.layers, self.attn_layers, self.logits = layers, attn_layers, logits
        self._pos = [meta["layers"].index(x) for x in layers]
        self._attn_pos = [meta["attn_layers"].index(x) for x in attn_layers]
        self._splits = {s: load_file(str(self.dir / f"{s}.safetensors")) for s in meta["splits"]}

    def __call__(self, batch: dict, split: str) -> TeacherOut:
        store, idx = self._splits[split], batch["idx"]
        w = batch["term_mask"].shape[1]
        pooled = store["pooled"][idx][:, self._pos, :w].float().permute(1, 0, 2, 3)
        grid = None
        if self.attn_layers:
            grid = store["grid"][idx][:, self._attn_pos, :, :w, :w].float().permute(1, 0, 2, 3, 4)
        logits = store["logits"][idx].float() if self.logits else None
        dev = batch["term_mask"].device
        return TeacherOut(pooled.to(dev), None if grid is None else grid.to(dev),
                          None if logits is None else logits.to(dev), self.layers, self.attn_layers)


def cache_key(teacher_id: str, data_fingerprint: str, *, max_length: int, selector: str, max_terms: int,
              layers: list[int], attn_layers: list[int], logits: bool) -> str:
    blob = json.dumps([CACHE_VERSION, teacher_id, data_fingerprint, max_length, selector_identity(selector), max_terms,
                       sorted(layers), sorted(attn_layers), logits])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_cache(model, tokenizer, texts_by_split: dict[str, list[str]], out_dir: Path, *, key: str,
                max_length: int, selector: str, max_terms: int, layers: list[int], attn_layers: list[int],
                logits: bool, batch_size: int = 32, device: torch.device | None = None) -> Path:
    """Compute and store the teacher signal for every note of every split; atomic, reused when present."""
    final = Path(out_dir) / key
    if (final / "meta.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    try:
        for split, texts in texts_by_split.items():
            examples = encode_notes(texts, None, None, tokenizer, selector=selector, max_terms=max_terms,
                                    max_length=max_length)
            n, w = len(examples), max([ex["n_terms"] for ex in examples] + [1])
            pooled = grid = logit_rows = None
            for idx in make_batches([len(ex["t_ids"]) for ex in examples], batch_size, shuffle=False):
                batch = collate([examples[i] for i in idx], None, tokenizer.pad_token_id)
                batch = {k: v.to(device) for k, v in batch.items()}
                out = teacher_forward(model, batch, layers, attn_layers, logits)
                bw = out.pooled.shape[2]
                if pooled is None:
                    pooled = torch.zeros(n, len(layers), w, out.pooled.shape[-1], dtype=torch.float16)
                    if attn_layers:
                        grid = torch.zeros(n, len(attn_layers), out.grid.shape[2], w, w, dtype=torch.float16)
                    if logits:
                        logit_rows = torch.zeros(n, out.logits.shape[-1])
                rows = torch.tensor(idx)
                pooled[rows, :, :bw] = out.pooled.permute(1, 0, 2, 3).half().cpu()
                if grid is not None:
                    grid[rows, :, :, :bw, :bw] = out.grid.permute(1, 0, 2, 3, 4).half().cpu()
                if logit_rows is not None:
                    logit_rows[rows] = out.logits.cpu()
            tensors = {"pooled": pooled}
            if grid is not None:
                tensors["grid"] = grid
            if logit_rows is not None:
                tensors["logits"] = logit_rows
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / f"{split}.safetensors"))
        meta = {"version": CACHE_VERSION, "layers": layers, "attn_layers": attn_layers, "logits": logits,
                "splits": list(texts_by_split), "max_length": max_length, "selector": selector,
                "n_notes": {s: len(t) for s, t in texts_by_split.items()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same key first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
