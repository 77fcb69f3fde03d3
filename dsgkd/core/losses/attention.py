"""Word-level attention KD between term-attention grids (pooled by `pooling.attention_grid(s)`)."""
from __future__ import annotations

from torch import Tensor


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
