"""The trainable part of DSG-KD: the student, its student→teacher projection, and one forward that returns
the task loss plus the weighted KD terms against a given teacher signal.

The KD terms are the match records a layer map resolves to (`layer_maps.layer_matches`); each group of
records is one call of the public loss functions the tests pin (`hidden_kd_from_pooled`,
`attention_kd_from_grids` on `pool_layers` / `attention_grids`), so the tested path is the trained path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsgkd.config import RunConfig
from dsgkd.core.layer_maps import layer_matches, match_groups
from dsgkd.core.losses.attention import attention_kd_from_grids
from dsgkd.core.losses.hidden import HIDDEN_LOSSES, hidden_kd_from_pooled
from dsgkd.core.losses.kd import make_projection
from dsgkd.core.losses.logit import logit_kd_loss
from dsgkd.core.losses.pooling import attention_grids, pool_layers
from dsgkd.core.teacher.signal import TeacherOut
from dsgkd.models.load import encoder_width


class Distiller(nn.Module):
    def __init__(self, student: nn.Module, cfg: RunConfig, layer_pairs: list[tuple[int, int]],
                 teacher_width: int | None):
        super().__init__()
        self.student, self.d = student, cfg.distill
        self.matches = layer_matches(layer_pairs, alpha=self.d.alpha, beta=self.d.beta,
                                     hidden_loss=self.d.hidden_loss)
        self.groups = match_groups(self.matches)
        self.proj = None
        if self.d.alpha > 0 and teacher_width is not None and HIDDEN_LOSSES[self.d.hidden_loss].options.get(
                "projected", True):
            self.proj = make_projection(encoder_width(student), teacher_width, self.d.projection)

    def _needs(self, feature: str) -> bool:
        return any(m.feature == feature for m in self.matches)

    def forward(self, batch: dict, teacher: TeacherOut | None) -> tuple[torch.Tensor, dict, torch.Tensor]:
        kd = teacher is not None
        out = self.student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"],
                           output_hidden_states=kd and self._needs("hidden"),
                           output_attentions=kd and self._needs("attention"))
        logits, labels = out.logits, batch["labels"]
        labelled = labels >= 0
        ce = F.cross_entropy(logits[labelled], labels[labelled]) if labelled.any() else logits.sum() * 0
        parts = {"ce": ce}
        loss = ce
        for feature, kind, weight, t_layers, s_layers in (self.groups if kd else []):
            if feature == "hidden":
                term = hidden_kd_from_pooled(teacher.pooled_for(t_layers),
                                             pool_layers(out.hidden_states, batch["s_spans"], s_layers),
                                             batch["term_mask"], self.proj, kind)
            else:
                term = attention_kd_from_grids(teacher.grid_for(t_layers),
                                               attention_grids(out.attentions, batch["s_spans"], s_layers),
                                               batch["term_mask"])
            parts[feature] = parts[feature] + term if feature in parts else term
            loss = loss + weight * term
        if kd and self.d.gamma > 0 and labelled.any():
            parts["logit"] = logit_kd_loss(logits, teacher.logits, self.d.temperature)
            loss = loss + self.d.gamma * parts["logit"]
        return loss, parts, logits
