"""The tensor-level KD terms (docs/architecture.md, "Losses and KD terms"): pool full hidden states / attentions to
terms, then compare.

The distiller calls the same pooling and comparison functions on a live or cached teacher signal, so the
path these functions pin in the tests is the path that trains.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dsgkd.core.layer_maps import attention_pairs
from dsgkd.core.losses.attention import attention_kd_from_grids
from dsgkd.core.losses.hidden import hidden_kd_from_pooled
from dsgkd.core.losses.pooling import attention_grids, pool_layers


def hidden_kd_loss(t_states: Tensor, s_states: Tensor, t_spans: Tensor, s_spans: Tensor,
                   term_mask: Tensor, layer_pairs: Sequence[tuple[int, int]],
                   proj: nn.Module | None = None, kind: str = "mse") -> Tensor:
    """Hidden-state KD over term vectors: t_states [Lt, B, Tt, Dt], s_states [Ls, B, Ts, Ds]."""
    t_pooled = pool_layers(t_states, t_spans, [t for t, _ in layer_pairs])
    s_pooled = pool_layers(s_states, s_spans, [s for _, s in layer_pairs])
    return hidden_kd_from_pooled(t_pooled, s_pooled, term_mask, proj, kind)


def attention_kd_loss(t_attn: Tensor, s_attn: Tensor, t_spans: Tensor, s_spans: Tensor,
                      term_mask: Tensor, layer_pairs: Sequence[tuple[int, int]]) -> Tensor:
    """Word-level attention KD: t_attn [Lt, B, Ht, Tt, Tt], s_attn [Ls, B, Hs, Ts, Ts]; pairs without an
    attention on both sides (the embeddings) are skipped."""
    pairs = attention_pairs(layer_pairs)
    if not pairs:
        return s_attn.new_zeros(())
    t_grid = attention_grids(t_attn, t_spans, [t for t, _ in pairs])
    s_grid = attention_grids(s_attn, s_spans, [s for _, s in pairs])
    return attention_kd_from_grids(t_grid, s_grid, term_mask)


def make_projection(student_width: int, teacher_width: int, kind: str = "auto") -> nn.Module | None:
    """Learned student → teacher map; `auto` adds one only when the widths differ."""
    if kind == "auto" and student_width == teacher_width:
        return None
    return nn.Linear(student_width, teacher_width)
