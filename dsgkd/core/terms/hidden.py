"""Hidden-state KD (the paper's alpha term): teacher and student hidden states pooled over each term's tokens,
compared by `distill.hidden_loss` on every pair of the layer map; or, with `distill.hidden_view: task`, only the
teacher's label-probe score of each word (`dsgkd.core.teacher.task_view`), matched by MSE through a read-out."""
from __future__ import annotations

from dsgkd.choices import HIDDEN_LOSSES, KD_TERMS
from dsgkd.core.terms.base import KDTerm, LayerPairs, TermField, TermInputs

VIEWS = ("raw", "task")


@KD_TERMS.register("hidden")
class HiddenStateKD(KDTerm):
    """Hidden-state KD on the pooled term vectors (the paper's alpha)"""

    weight, label = "alpha", "hidden-state KD"
    options = ("hidden_loss", "projection", "hidden_view")
    fields = {"hidden_view": TermField("raw", "what of the teacher's term vectors is distilled: raw, every coordinate "
                                       "(the paper); task, only the score of a probe fitted on the labelled notes",
                                       choices=VIEWS)}
    source_field = "hidden_teacher"
    teacher_outputs = student_outputs = frozenset({"hidden_states"})

    def layer_pairs(self, pairs: LayerPairs) -> LayerPairs:
        return list(pairs)

    def make_module(self, settings, student_width, teacher_width):
        from torch import nn

        if settings.hidden_view == "task":  # one score per word: a read-out, whatever hidden_loss says
            return nn.Linear(student_width, 1)
        if teacher_width is None or not HIDDEN_LOSSES[settings.hidden_loss].options.get("projected", True):
            return None
        from dsgkd.core.losses.kd import make_projection

        return make_projection(student_width, teacher_width, settings.projection)

    def compute(self, x: TermInputs):
        from dsgkd.core.losses.hidden import hidden_kd_from_pooled
        from dsgkd.core.losses.pooling import pool_layers

        t_layers, s_layers = [t for t, _ in x.pairs], [s for _, s in x.pairs]
        return hidden_kd_from_pooled(x.teacher.pooled_for(t_layers),
                                     pool_layers(x.student.hidden_states, x.batch["s_spans"], s_layers),
                                     x.batch["term_mask"], x.module,
                                     "mse" if x.settings.hidden_view == "task" else x.settings.hidden_loss)
