"""The trainable part of DSG-KD: the student, the modules its KD terms own (a student→teacher projection), and
one forward that returns the task loss plus the weighted KD terms against a given teacher signal.

The terms are the registered `KDTerm`s with a positive weight (`dsgkd.core.terms.enabled`), summed in one loop in
registration order; each computes through the public loss functions the tests pin (`hidden_kd_from_pooled`,
`attention_kd_from_grids`, `logit_kd_loss`), so the tested path is the trained path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsgkd.config import DistillConfig
from dsgkd.core.terms import TermInputs, enabled, needs_output
from dsgkd.core.teacher.signal import TeacherOut
from dsgkd.models.load import encoder_width


class Distiller(nn.Module):
    def __init__(self, student: nn.Module, settings: DistillConfig, layer_pairs: list[tuple[int, int]],
                 teacher_width: int | None, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.student, self.d, self.label_smoothing = student, settings, label_smoothing
        self.register_buffer("class_weights", class_weights, persistent=False)  # `train.class_weight`; None: plain CE
        self.terms = enabled(settings, layer_pairs)
        self.sources = [term.source(settings) for term, _, _ in self.terms]  # which teacher each term reads
        self.term_modules = nn.ModuleDict()
        for term, _, _ in self.terms:
            module = term.make_module(settings, encoder_width(student), teacher_width)
            if module is not None:
                self.term_modules[term.name] = module

    def forward(self, batch: dict, teacher: dict[str, TeacherOut] | None) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """`teacher`: the signal of each teacher the terms read (`TeacherSignals`); None trains without KD."""
        terms = self.terms if teacher is not None else []
        out = self.student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"],
                           output_hidden_states=needs_output(terms, "student", "hidden_states"),
                           output_attentions=needs_output(terms, "student", "attentions"))
        logits, labels = out.logits, batch["labels"]
        labelled = labels >= 0
        ce = (F.cross_entropy(logits[labelled].float(), labels[labelled], weight=self.class_weights,
                              label_smoothing=self.label_smoothing)
              if labelled.any() else logits.sum() * 0)
        parts, loss = {"ce": ce}, ce
        for (term, weight, pairs), source in zip(terms, self.sources):
            value = term.compute(TermInputs(batch, out, teacher[source], self.d, pairs, self.term_modules[term.name]
                                            if term.name in self.term_modules else None))
            if value is not None:
                parts[term.name] = value
                loss = loss + weight * value
        return loss, parts, logits
