"""DSG-KD losses (DESIGN §3), vectorised over batch, terms, layers and heads.

Teacher and student tokenise differently, so nothing is compared token by token: every signal is first
pooled to the *terms* both sides share (span pooling), then compared. Pooling is a B×W×T averaging
matrix applied with one einsum, so cost does not grow with a Python loop over words.

Teacher-side tensors may arrive pre-pooled from a cache (dsgkd.teacher); the `*_from_pooled` /
`*_from_grids` functions are the shared core and the tensor-level functions wrap them.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def hidden_kd_from_pooled(t_pooled: Tensor, s_pooled: Tensor, term_mask: Tensor,
                          proj: nn.Module | None = None, kind: str = "mse") -> Tensor:
    """Distance between pooled term vectors of mapped layers: [P, B, W, Dt] vs [P, B, W, Ds].

    mse: mean squared error over valid (pair, term, dim); cosine: mean (1 − cos) over valid (pair, term);
    relational: MSE between the teacher's and the student's term-by-term cosine-similarity matrices over
    all valid terms of the batch — it copies which terms the teacher finds alike (severe with severe)
    rather than each coordinate, needs no projection, and ignores the token-identity variance that
    dominates raw MSE.
    """
    if kind == "relational":
        return relational_kd(t_pooled, s_pooled, term_mask)
    if proj is not None:
        s_pooled = proj(s_pooled)
    if t_pooled.shape[-1] != s_pooled.shape[-1]:
        raise ValueError(f"teacher width {t_pooled.shape[-1]} != student width {s_pooled.shape[-1]}: "
                         "a projection is needed")
    t_pooled = t_pooled.to(s_pooled.dtype)
    mask = term_mask.to(s_pooled.dtype)  # [B, W]
    n_terms = mask.sum() * t_pooled.shape[0]
    if kind == "mse":
        err = (s_pooled - t_pooled).pow(2).mean(-1)  # [P, B, W]
    elif kind == "cosine":
        err = 1 - F.cosine_similarity(s_pooled, t_pooled, dim=-1, eps=1e-6)
    else:
        raise ValueError(f"unknown hidden loss {kind!r}")
    return (err * mask).sum() / n_terms.clamp(min=1)


def relational_kd(t_pooled: Tensor, s_pooled: Tensor, term_mask: Tensor) -> Tensor:
    """Similarity-preserving KD over the batch's terms: [P, B, W, D*] → mean over pairs of
    MSE(cos-sim(teacher terms), cos-sim(student terms)) on the N×N matrix of valid terms (diagonal excluded).
    Centring each side on its batch mean first removes the direction every term shares."""
    keep = term_mask.reshape(-1).bool()
    n = int(keep.sum())
    if n < 2:
        return s_pooled.sum() * 0
    t = t_pooled.flatten(1, 2)[:, keep].to(s_pooled.dtype)  # [P, N, Dt]
    s = s_pooled.flatten(1, 2)[:, keep]                      # [P, N, Ds]
    t = F.normalize(t - t.mean(1, keepdim=True), dim=-1, eps=1e-6)
    s = F.normalize(s - s.mean(1, keepdim=True), dim=-1, eps=1e-6)
    off_diag = 1 - torch.eye(n, device=s.device, dtype=s.dtype)
    diff = (s @ s.transpose(1, 2) - t @ t.transpose(1, 2)).pow(2) * off_diag
    return diff.sum() / (off_diag.sum() * s.shape[0])


def hidden_kd_loss(t_states: Tensor, s_states: Tensor, t_spans: Tensor, s_spans: Tensor,
                   term_mask: Tensor, layer_pairs: Sequence[tuple[int, int]],
                   proj: nn.Module | None = None, kind: str = "mse") -> Tensor:
    """Hidden-state KD over term vectors (DESIGN §4): t_states [Lt, B, Tt, Dt], s_states [Ls, B, Ts, Ds]."""
    t_idx = torch.tensor([t for t, _ in layer_pairs], device=t_states.device)
    s_idx = torch.tensor([s for _, s in layer_pairs], device=s_states.device)
    t_pooled = pool_spans(t_states.index_select(0, t_idx), t_spans)
    s_pooled = pool_spans(s_states.index_select(0, s_idx), s_spans)
    return hidden_kd_from_pooled(t_pooled, s_pooled, term_mask, proj, kind)


def attention_grid(attn: Tensor, spans: Tensor) -> Tensor:
    """Token attention [..., B, H, T, T] → term grid [..., B, H, W, W], not yet normalised.

    grid[i, j] = mean over term i's query tokens of the summed attention on term j's key tokens; kept
    unnormalised so a cache can store it once and each run renormalises over the terms it keeps.
    """
    length = attn.shape[-1]
    q = span_matrix(spans, length, average=True, dtype=attn.dtype)
    k = span_matrix(spans, length, average=False, dtype=attn.dtype)
    return torch.einsum("bwt,...bhts,bvs->...bhwv", q, attn, k)


def normalise_grid(grid: Tensor, term_mask: Tensor) -> Tensor:
    """Renormalise each query term's row over the valid key terms; invalid rows/columns become 0."""
    keys = term_mask[:, None, None, :].to(grid.dtype)          # [B, 1, 1, W]
    rows = term_mask[:, None, :, None].to(grid.dtype)          # [B, 1, W, 1]
    g = grid * keys
    return g / g.sum(-1, keepdim=True).clamp(min=1e-12) * rows


def attention_kd_from_grids(t_grid: Tensor, s_grid: Tensor, term_mask: Tensor) -> Tensor:
    """MSE between term-attention grids [P, B, H, W, W] of mapped layers over valid (pair, head, i, j).

    Heads are averaged on both sides when teacher and student have different head counts.
    """
    if t_grid.shape[-3] != s_grid.shape[-3]:
        t_grid, s_grid = t_grid.mean(-3, keepdim=True), s_grid.mean(-3, keepdim=True)
    t_norm = normalise_grid(t_grid.to(s_grid.dtype), term_mask)
    s_norm = normalise_grid(s_grid, term_mask)
    m = term_mask.to(s_grid.dtype)
    pair_mask = m[:, :, None] * m[:, None, :]                  # [B, W, W]
    n = pair_mask.sum() * s_grid.shape[0] * s_grid.shape[-3]
    return ((s_norm - t_norm).pow(2) * pair_mask[:, None]).sum() / n.clamp(min=1)


def attention_kd_loss(t_attn: Tensor, s_attn: Tensor, t_spans: Tensor, s_spans: Tensor,
                      term_mask: Tensor, layer_pairs: Sequence[tuple[int, int]]) -> Tensor:
    """Word-level attention KD: t_attn [Lt, B, Ht, Tt, Tt], s_attn [Ls, B, Hs, Ts, Ts].

    Attention layer i is the attention inside transformer layer i (1-based, matching hidden state i);
    pairs that involve the embeddings (index 0) carry no attention and are skipped.
    """
    pairs = [(t, s) for t, s in layer_pairs if t > 0 and s > 0]
    if not pairs:
        return s_attn.new_zeros(())
    t_idx = torch.tensor([t - 1 for t, _ in pairs], device=t_attn.device)
    s_idx = torch.tensor([s - 1 for _, s in pairs], device=s_attn.device)
    t_grid = attention_grid(t_attn.index_select(0, t_idx), t_spans)
    s_grid = attention_grid(s_attn.index_select(0, s_idx), s_spans)
    return attention_kd_from_grids(t_grid, s_grid, term_mask)


def logit_kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher_T ‖ student_T) · T², averaged over the batch (Hinton et al.)."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.to(student_logits.dtype) / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * (t * t)


def make_projection(student_width: int, teacher_width: int, kind: str = "auto") -> nn.Module | None:
    """Learned student → teacher map; `auto` adds one only when the widths differ."""
    if kind == "auto" and student_width == teacher_width:
        return None
    return nn.Linear(student_width, teacher_width)
