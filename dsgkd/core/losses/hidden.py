"""Hidden-state KD between pooled term vectors, and the registry of its distance functions.

Add a distance with `@HIDDEN_LOSSES.register("name")` on `fn(t_pooled, s_pooled, term_mask) -> scalar`,
where the pooled tensors are [pairs, batch, terms, width] (the student's already projected to the teacher's
width unless the entry is registered with `projected=False`) and `term_mask` [batch, terms] marks the
terms both tokenizers kept. `distill.hidden_loss` and `dsgkd train --hidden-loss` accept every key.

This module uses tensor methods and imports torch only inside the functions that need it, so the CLI
reads the registry's names without loading torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dsgkd.choices import HIDDEN_LOSSES

if TYPE_CHECKING:
    from torch import Tensor, nn



def hidden_kd_from_pooled(t_pooled: Tensor, s_pooled: Tensor, term_mask: Tensor,
                          proj: nn.Module | None = None, kind: str = "mse") -> Tensor:
    """Distance `kind` between pooled term vectors of mapped layers: [P, B, W, Dt] vs [P, B, W, Ds]."""
    entry, _ = HIDDEN_LOSSES.lookup(kind)
    if entry.options.get("projected", True):
        if proj is not None:
            s_pooled = proj(s_pooled)
        if t_pooled.shape[-1] != s_pooled.shape[-1]:
            raise ValueError(f"teacher width {t_pooled.shape[-1]} != student width {s_pooled.shape[-1]}: "
                             "a projection is needed")
        t_pooled = t_pooled.to(s_pooled.dtype)
    return entry.fn(t_pooled, s_pooled, term_mask)


def mean_over_terms(err: Tensor, term_mask: Tensor) -> Tensor:
    """Mean of a per-(pair, term) error [P, B, W] over the valid terms of every pair."""
    mask = term_mask.to(err.dtype)
    n_terms = mask.sum() * err.shape[0]
    return (err * mask).sum() / n_terms.clamp(min=1)


@HIDDEN_LOSSES.register("mse")
def mse(t_pooled: Tensor, s_pooled: Tensor, term_mask: Tensor) -> Tensor:
    """Mean squared error over valid (pair, term, dim): the paper's loss."""
    return mean_over_terms((s_pooled - t_pooled).pow(2).mean(-1), term_mask)


@HIDDEN_LOSSES.register("cosine")
def cosine(t_pooled: Tensor, s_pooled: Tensor, term_mask: Tensor) -> Tensor:
    """Mean (1 - cos) over valid (pair, term): direction only, scale-free."""
    import torch.nn.functional as F

    return mean_over_terms(1 - F.cosine_similarity(s_pooled, t_pooled, dim=-1, eps=1e-6), term_mask)


@HIDDEN_LOSSES.register("relational", projected=False)
def relational(t_pooled: Tensor, s_pooled: Tensor, term_mask: Tensor) -> Tensor:
    """Match term-by-term cosine similarities over the batch (which terms the teacher finds alike); no projection.

    Mean over pairs of MSE(cos-sim(teacher terms), cos-sim(student terms)) on the N×N matrix of valid terms,
    diagonal excluded. Centring each side on its batch mean first removes the direction every term shares;
    it ignores the token-identity variance that dominates raw MSE.
    """
    import torch
    import torch.nn.functional as F

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
