"""What a distillation term is: one registered piece with its weight, its options, the model outputs it reads and
how it is computed from the pooled signals (docs/architecture.md, "Losses and KD terms").

The distiller sums the enabled terms (weight > 0) in one loop, the engine asks the student and the teacher for
exactly the outputs they declare, a search samples a term's options only where its weight can be non-zero, and
the KD-off control, the paper's point and the logit-KD-needs-a-task-head check are read from the declarations.
This module imports no torch: the config and `--help` read the declarations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from torch import Tensor, nn

    from dsgkd.config import DistillConfig
    from dsgkd.core.teacher.signal import TeacherOut

LayerPairs = list[tuple[int, int]]
OUTPUTS = frozenset({"hidden_states", "attentions", "logits"})
# Which frozen teacher a term reads: the teacher as loaded ("pretrained": the domain model itself, or its
# random-init twin for the knowledge-free control) or its copy fine-tuned on the task ("finetuned", the one with a
# task head). The paper distils the pretrained teacher's hidden states and attentions.
SOURCES = ("pretrained", "finetuned")


@dataclass(frozen=True)
class TermField:
    """A `distill.<name>` setting a term brings with it: its weight or an option that no built-in field covers.
    A config that names it is checked here (`ge` for numbers); one that omits it gets `default`."""

    default: Any
    help: str
    ge: float | None = None
    choices: tuple[str, ...] | None = None


@dataclass
class TermInputs:
    """What a term computes from in one batch: the collated batch (term spans and mask, labels), the student's
    forward output (with the hidden states / attentions some term asked for), the teacher signal, the run's
    distill settings, the layer pairs this term reads and the module it made (a projection, or None)."""

    batch: dict
    student: Any
    teacher: TeacherOut
    settings: DistillConfig
    pairs: LayerPairs
    module: nn.Module | None


class KDTerm:
    """One distillation term. Subclass it, set the class attributes, implement `compute` and register the class:
    `@KD_TERMS.register("name")` (the name is also the metric `train_<name>`)."""

    name: str = ""                                  # set from the registry key by `dsgkd.core.terms.registered`
    weight: ClassVar[str]                           # the distill field holding its weight (alpha, beta, gamma, ...)
    label: ClassVar[str]                            # what it is, in messages ("logit KD")
    options: ClassVar[tuple[str, ...]] = ()         # distill fields only this term reads: searched where weight > 0
    fields: ClassVar[dict[str, TermField]] = {}     # distill fields the term declares itself
    teacher_outputs: ClassVar[frozenset[str]] = frozenset()
    student_outputs: ClassVar[frozenset[str]] = frozenset()
    needs_task_head: ClassVar[bool] = False         # reads a teacher with a task head: the fine-tuned one
    source_field: ClassVar[str | None] = None       # distill field choosing its teacher (SOURCES), if it may choose

    def __init_subclass__(cls, **kwargs):
        """A term that may choose its teacher gets that choice as one of its own fields and options (default:
        the pretrained teacher, as the paper distils), declared here once for every such term."""
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("source_field")
        if name:
            cls.fields = {**cls.fields, name: TermField("pretrained", f"which teacher {cls.label} reads (the paper: "
                                                        "the pretrained one)", choices=SOURCES)}
            cls.options = (*cls.options, name)

    def source(self, settings: DistillConfig) -> str:
        """The teacher this term reads in a run with these settings (one of SOURCES)."""
        if self.needs_task_head:
            return "finetuned"
        return getattr(settings, self.source_field) if self.source_field else "pretrained"

    def layer_pairs(self, pairs: LayerPairs) -> LayerPairs:
        """The (teacher state, student state) pairs of the run's layer map this term compares; none for a term
        on the models' outputs. A term with no pair to compare is left out of the run."""
        return []

    def make_module(self, settings: DistillConfig, student_width: int, teacher_width: int | None) -> nn.Module | None:
        """A trainable piece the term needs (trained at the head's learning rate), or None."""
        return None

    def compute(self, x: TermInputs) -> Tensor | None:
        """The term's unweighted value on this batch, or None when the batch gives it nothing to compare."""
        raise NotImplementedError
