"""Token signals → term signals: the bridge between two tokenizations.

Pooling is a B×W×T averaging matrix applied with one einsum, so cost does not grow with a Python loop
over words. Teacher and student states are pooled by the same functions, live or when a cache is built.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dsgkd.core.layer_maps import attention_index


def span_matrix(spans: Tensor, length: int, *, average: bool = True, dtype: torch.dtype = torch.float32) -> Tensor:
    """[B, W, T] matrix selecting each term's tokens: rows average (or sum) tokens in [start, end)."""
    pos = torch.arange(length, device=spans.device)
    start, end = spans[..., 0:1], spans[..., 1:2]
    inside = (pos >= start) & (pos < end)
    m = inside.to(dtype)
    if average:
        m = m / inside.sum(-1, keepdim=True).clamp(min=1).to(dtype)
    return m


def pool_spans(states: Tensor, spans: Tensor) -> Tensor:
    """Mean of `states[..., b, start:end, :]` per term: [..., B, T, D] → [..., B, W, D]; empty spans → 0."""
    m = span_matrix(spans, states.shape[-2], dtype=states.dtype)
    return torch.einsum("bwt,...btd->...bwd", m, states)


def _select(layers_out: Tensor | Sequence[Tensor], index: list[int]) -> Tensor:
    """Stack the given layers of a [L, ...] tensor or of a model's per-layer tuple."""
    if isinstance(layers_out, Tensor):
        return layers_out.index_select(0, torch.tensor(index, device=layers_out.device))
    return torch.stack([layers_out[i] for i in index])


def pool_layers(states: Tensor | Sequence[Tensor], spans: Tensor, layers: Sequence[int]) -> Tensor:
    """Term vectors [len(layers), B, W, D] of the given hidden states (0 = embeddings) of
    `states` ([L, B, T, D] or the model's `hidden_states` tuple)."""
    return pool_spans(_select(states, list(layers)), spans)


def attention_grid(attn: Tensor, spans: Tensor) -> Tensor:
    """Token attention [..., B, H, T, T] → term grid [..., B, H, W, W], not yet normalised.

    grid[i, j] = mean over term i's query tokens of the summed attention on term j's key tokens; kept
    unnormalised so a cache can store it once and each run renormalises over the terms it keeps.
    """
    length = attn.shape[-1]
    q = span_matrix(spans, length, average=True, dtype=attn.dtype)
    k = span_matrix(spans, length, average=False, dtype=attn.dtype)
    return torch.einsum("bwt,...bhts,bvs->...bhwv", q, attn, k)


def attention_grids(attentions: Tensor | Sequence[Tensor], spans: Tensor, states: Sequence[int]) -> Tensor:
    """Term grids [len(states), B, H, W, W] of the attentions that produced the given hidden states
    (`attentions` [L, B, H, T, T] or the model's tuple; every state must have one, i.e. be > 0)."""
    return attention_grid(_select(attentions, [attention_index(s) for s in states]), spans)
