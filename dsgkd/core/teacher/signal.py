"""The frozen teacher's signal, live: the losses never know whether it was computed now or cached.

Both paths pool with the functions the losses are tested through (`pool_layers`, `attention_grids`) and
return the same `TeacherOut`; the term axis is the note's `find_terms` order, so the student's tokenizer
only decides which of those terms are masked out.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from dsgkd.core.losses.pooling import attention_grids, pool_layers

FORWARD_LOG_ENV = "DSGKD_TEACHER_FORWARD_LOG"


@dataclass
class TeacherOut:
    pooled: torch.Tensor | None        # [len(layers), B, W, D] in the order of `layers`
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
    out = model(input_ids=batch["t_ids"], attention_mask=batch["t_mask"], output_hidden_states=bool(layers),
                output_attentions=bool(attn_layers))
    _log_forward(batch["t_ids"].shape[0])
    pooled = pool_layers(out.hidden_states, batch["t_spans"], layers).float() if layers else None
    grid = attention_grids(out.attentions, batch["t_spans"], attn_layers).float() if attn_layers else None
    return TeacherOut(pooled, grid, out.logits.float() if logits else None, list(layers), list(attn_layers))


class LiveTeacher:
    """Runs the frozen teacher on each batch (the `--no-teacher-cache` path, and plain `dsgkd train`)."""

    def __init__(self, model, layers: list[int], attn_layers: list[int], logits: bool):
        self.model = model.eval().requires_grad_(False)
        self.layers, self.attn_layers, self.logits = layers, attn_layers, logits

    def __call__(self, batch: dict, split: str) -> TeacherOut:
        return teacher_forward(self.model, batch, self.layers, self.attn_layers, self.logits)


class TeacherSignals:
    """The signal of every teacher a run's terms read (`SOURCES`: the pretrained teacher, its fine-tuned copy),
    each live or cached: one batch in, `{source: TeacherOut}` out."""

    def __init__(self, readers: dict):
        self.readers = readers

    def __call__(self, batch: dict, split: str) -> dict[str, TeacherOut]:
        return {source: read(batch, split) for source, read in self.readers.items()}
