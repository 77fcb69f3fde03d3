"""Word-level attention KD (the paper's beta term): each mapped layer's attention pooled to a term × term grid,
renormalised over the terms both tokenizers kept, compared by MSE."""
from __future__ import annotations

from dsgkd.choices import KD_TERMS
from dsgkd.core.layer_maps import attention_pairs
from dsgkd.core.terms.base import KDTerm, LayerPairs, TermInputs


@KD_TERMS.register("attention")
class AttentionKD(KDTerm):
    """Word-level attention KD on term-attention grids (the paper's beta)"""

    weight, label = "beta", "attention KD"
    source_field = "attention_teacher"
    teacher_outputs = student_outputs = frozenset({"attentions"})

    def layer_pairs(self, pairs: LayerPairs) -> LayerPairs:
        return attention_pairs(pairs)

    def compute(self, x: TermInputs):
        from dsgkd.core.losses.attention import attention_kd_from_grids
        from dsgkd.core.losses.pooling import attention_grids

        t_layers, s_layers = [t for t, _ in x.pairs], [s for _, s in x.pairs]
        return attention_kd_from_grids(x.teacher.grid_for(t_layers),
                                       attention_grids(x.student.attentions, x.batch["s_spans"], s_layers),
                                       x.batch["term_mask"])
