"""The frozen teacher's signal, cached: computed once per (teacher, data, max_length, selector), read by every trial.

A search runs many trials against one frozen teacher on the same notes. Its pooled term vectors,
term-attention grids and logits do not depend on the student or the trial's temperature, so they are
written once as safetensors (`write_cache`) and every trial reads them (`CachedTeacher`), returning the
same `TeacherOut` as the live path.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dsgkd.core.align import selector_identity
from dsgkd.core.features import collate, encode_notes, make_batches
from dsgkd.core.teacher.signal import TeacherOut, teacher_forward
from dsgkd.errors import UserError
from dsgkd.storage import content_key, staged_dir

CACHE_VERSION = 1


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
    return content_key([CACHE_VERSION, teacher_id, data_fingerprint, max_length, selector_identity(selector),
                        max_terms, sorted(layers), sorted(attn_layers), logits])


def _split_tensors(model, tokenizer, texts: list[str], *, max_length: int, selector: str, max_terms: int,
                   layers: list[int], attn_layers: list[int], logits: bool, batch_size: int,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """The teacher signal of one split, padded to its widest note: fp16 pooled vectors and grids, fp32 logits."""
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
    tensors = {"pooled": pooled, "grid": grid, "logits": logit_rows}
    return {k: v.contiguous() for k, v in tensors.items() if v is not None}


def write_cache(model, tokenizer, texts_by_split: dict[str, list[str]], out_dir: Path, *, key: str,
                max_length: int, selector: str, max_terms: int, layers: list[int], attn_layers: list[int],
                logits: bool, batch_size: int = 32, device: torch.device | None = None) -> Path:
    """Compute and store the teacher signal for every note of every split; atomic, reused when present."""
    final = Path(out_dir) / key
    if (final / "meta.json").is_file():
        return final
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    with staged_dir(final, exists="keep") as tmp:
        for split, texts in texts_by_split.items():
            tensors = _split_tensors(model, tokenizer, texts, max_length=max_length, selector=selector,
                                     max_terms=max_terms, layers=layers, attn_layers=attn_layers, logits=logits,
                                     batch_size=batch_size, device=device)
            save_file(tensors, str(tmp / f"{split}.safetensors"))
        meta = {"version": CACHE_VERSION, "layers": layers, "attn_layers": attn_layers, "logits": logits,
                "splits": list(texts_by_split), "max_length": max_length, "selector": selector,
                "n_notes": {s: len(t) for s, t in texts_by_split.items()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return final
