"""Hidden-state KD's `task` view of a teacher: only what a label probe reads of its pooled term vectors.

Raw MSE pulls every coordinate of the teacher's term vectors. Where the teacher's term knowledge is one
direction among many (token identity and position carry most of the variance), the student spends itself on the
rest and the knowledge does not reach its predictions (docs/levers.md: the real teacher's raw states cost more
than they give; an oracle signal that is one direction moves held-out-term AUROC by +0.13). The task view fits,
per teacher layer, a logistic regression from each selected word's pooled vector to its note's label, on the
labelled training notes only (what a user has: no term list, no held-out severity), and hands the term each
word's standardised probe score: one number per (layer, word), which the student matches through a learned
read-out. A word the labelled notes never show gets the teacher's reading of it: the knowledge DSG-KD moves.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from dsgkd.core.features import collate
from dsgkd.core.steps import to_device
from dsgkd.core.teacher.signal import TeacherOut

PROBE_C = 0.1  # inverse L2 strength on standardised vectors: thousands of words, a few hundred dimensions


@dataclass(frozen=True)
class TaskProbe:
    """Per teacher layer: the standardisation, the probe's direction and bias, and its score's mean and SD on
    the training words (so each layer's score has unit variance there)."""

    layers: list[int]
    mean: torch.Tensor    # [L, D]
    scale: torch.Tensor   # [L, D]
    weight: torch.Tensor  # [L, D]
    bias: torch.Tensor    # [L]
    score_mean: torch.Tensor  # [L]
    score_sd: torch.Tensor    # [L]

    def scores(self, pooled: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """[L', B, W, D] pooled vectors of `layers` → [L', B, W, 1] standardised probe scores."""
        at = [self.layers.index(x) for x in layers]
        m, s, w = (t[at].to(pooled.device)[:, None, None] for t in (self.mean, self.scale, self.weight))
        raw = (((pooled - m) / s) * w).sum(-1) + self.bias[at].to(pooled.device)[:, None, None]
        mu, sd = (t[at].to(pooled.device)[:, None, None] for t in (self.score_mean, self.score_sd))
        return ((raw - mu) / sd).unsqueeze(-1)


def term_rows(reader, examples: list[dict], s_pad: int, t_pad: int, batch_size: int, device) -> tuple:
    """Every kept word of the labelled `examples`: its pooled vectors [L, N, D] and its note's label [N]."""
    vectors, labels = [], []
    for start in range(0, len(examples), batch_size):
        batch = to_device(collate(examples[start:start + batch_size], s_pad, t_pad), device)
        out = reader(batch, "train")
        keep = batch["term_mask"]
        vectors.append(out.pooled[:, keep].float().cpu())
        labels.append(batch["labels"][:, None].expand_as(keep)[keep].cpu())
    return torch.cat(vectors, 1).numpy(), torch.cat(labels).numpy()


def fit_task_probe(reader, examples: list[dict], s_pad: int, t_pad: int, batch_size: int, device) -> TaskProbe:
    """The probe of each layer `reader` pools, fitted on the labelled notes among `examples`."""
    from sklearn.linear_model import LogisticRegression

    labelled = [ex for ex in examples if ex["label"] >= 0]
    x, y = term_rows(reader, labelled, s_pad, t_pad, batch_size, device)
    if len(np.unique(y)) < 2:
        raise ValueError("the task view needs selected words in notes of both classes")
    parts = {k: [] for k in ("mean", "scale", "weight", "bias", "score_mean", "score_sd")}
    for layer in x:
        mean, scale = layer.mean(0), layer.std(0) + 1e-6
        z = (layer - mean) / scale
        probe = LogisticRegression(C=PROBE_C, max_iter=2000).fit(z, y)
        score = probe.decision_function(z)
        for k, v in zip(parts, (mean, scale, probe.coef_[0], probe.intercept_[0], score.mean(), score.std() + 1e-6)):
            parts[k].append(np.asarray(v, dtype=np.float32))
    return TaskProbe(list(reader.layers), **{k: torch.from_numpy(np.stack(v)) for k, v in parts.items()})


class TaskViewReader:
    """A teacher reader whose pooled term vectors come out as the probe's scores (grids and logits untouched)."""

    def __init__(self, reader, probe: TaskProbe):
        self.reader, self.probe = reader, probe
        self.layers, self.attn_layers = reader.layers, reader.attn_layers

    def __call__(self, batch: dict, split: str) -> TeacherOut:
        out = self.reader(batch, split)
        return replace(out, pooled=self.probe.scores(out.pooled, out.layers))
