"""Logit KD (Hinton et al., gamma): the student's softened class distribution pulled towards a teacher with a task
head, i.e. one fine-tuned on the task."""
from __future__ import annotations

from dsgkd.choices import KD_TERMS
from dsgkd.core.terms.base import KDTerm, TermInputs


@KD_TERMS.register("logit")
class LogitKD(KDTerm):
    """Logit KD at distill.temperature (gamma; needs a fine-tuned teacher)"""

    weight, label = "gamma", "logit KD"
    options = ("temperature",)
    teacher_outputs = student_outputs = frozenset({"logits"})
    needs_task_head = True  # reads the fine-tuned teacher

    def compute(self, x: TermInputs):
        from dsgkd.core.losses.logit import logit_kd_loss

        if not (x.batch["labels"] >= 0).any():  # a batch of transfer notes only
            return None
        return logit_kd_loss(x.student.logits, x.teacher.logits, x.settings.temperature)
