"""Hidden-state KD from full hidden states (pool to terms, then compare), and the student→teacher projection
(docs/architecture.md, "Losses and KD terms").

`hidden_kd_loss` is the composition the hidden-state KD term runs on a live or cached teacher signal
(`pool_layers` then `hidden_kd_from_pooled`), in one call on full states: the loss benchmark times it and the
tests pin the distiller against it.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dsgkd.core.losses.hidden import hidden_kd_from_pooled
from dsgkd.core.losses.pooling import pool_layers


def hidden_kd_loss(t_states: Tensor, s_states: Tensor, t_spans: Tensor, s_spans: Tensor,
                   term_mask: Tensor, layer_pairs: Sequence[tuple[int, int]],
                   proj: nn.Module | None = None, kind: str = "mse") -> Tensor:
    """Hidden-state KD over term vectors: t_states [Lt, B, Tt, Dt], s_states [Ls, B, Ts, Ds]."""
    t_pooled = pool_layers(t_states, t_spans, [t for t, _ in layer_pairs])
    s_pooled = pool_layers(s_states, s_spans, [s for _, s in layer_pairs])
    return hidden_kd_from_pooled(t_pooled, s_pooled, term_mask, proj, kind)


def make_projection(student_width: int, teacher_width: int, kind: str = "auto") -> nn.Module | None:
    """Learned student → teacher map; `auto` adds one only when the widths differ."""
    if kind == "auto" and student_width == teacher_width:
        return None
    return nn.Linear(student_width, teacher_width)
