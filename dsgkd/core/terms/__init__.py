"""The registry of distillation terms (`dsgkd.choices.KD_TERMS`) and what the other layers read from it.

Importing this package registers the built-in terms, in the order the distiller sums them: hidden-state KD
(alpha), word-level attention KD (beta), logit KD (gamma). Adding a term is one file with a registered `KDTerm`
subclass (docs/architecture.md, "Extending"). No torch is imported here.
"""
from __future__ import annotations

from dsgkd.choices import KD_TERMS
from dsgkd.constants import PAPER
# registers the built-in terms, in the order the distiller sums them (and the metrics list them)
from dsgkd.core.terms import hidden  # noqa: F401, I001
from dsgkd.core.terms import attention  # noqa: F401, I001
from dsgkd.core.terms import logit  # noqa: F401, I001
from dsgkd.core.terms.base import SOURCES, KDTerm, LayerPairs, TermField, TermInputs

__all__ = ["KD_TERMS", "SOURCES", "KDTerm", "TermField", "TermInputs", "registered", "enabled", "kd_off",
           "paper_weights", "conditions", "teacher_states", "needs_output", "sources", "weighted_reads",
           "weighted_sources"]


def registered() -> list[KDTerm]:
    """One instance of every registered term, in registration order."""
    terms = []
    for entry in KD_TERMS.entries.values():
        term = entry.fn()
        term.name = entry.name
        terms.append(term)
    return terms


def enabled(settings, pairs: LayerPairs) -> list[tuple[KDTerm, float, LayerPairs]]:
    """(term, weight, its layer pairs) for every term with a positive weight and, when it compares layers,
    a pair to compare."""
    out = []
    for term in registered():
        weight, mine = getattr(settings, term.weight), term.layer_pairs(pairs)
        if weight > 0 and (mine or not (term.teacher_outputs & {"hidden_states", "attentions"})):
            out.append((term, weight, mine))
    return out


def kd_off() -> dict[str, float]:
    """Every KD weight at zero, as dotted overrides: the KD-off control."""
    return {f"distill.{t.weight}": 0.0 for t in registered()}


def paper_weights() -> dict[str, float]:
    """The paper's weights as dotted overrides (a term the paper does not have is off)."""
    return {key: PAPER.get(key, 0.0) for key in kd_off()}


def conditions() -> dict[str, tuple[str, str]]:
    """Searched option → (the weight that gates it, what that weight turns on): a search samples an option only
    in the trials where its term's weight is positive."""
    return {f"distill.{opt}": (f"distill.{t.weight}", t.label) for t in registered() for opt in t.options}


def sources(terms: list[tuple[KDTerm, float, LayerPairs]], settings) -> list[str]:
    """The teachers (SOURCES) the enabled terms read, in SOURCES order."""
    used = {term.source(settings) for term, _, _ in terms}
    return [s for s in SOURCES if s in used]


def weighted_reads(settings, source: str, outputs: set[str]) -> bool:
    """Whether a term with a positive weight reads one of `outputs` of teacher `source`, before any layer map is
    known (what a teacher cache must hold)."""
    return any(term.teacher_outputs & outputs and getattr(settings, term.weight) > 0
               and term.source(settings) == source for term in registered())


def weighted_sources(settings) -> list[str]:
    """The teachers read by the terms with a positive weight, before any layer map is known (what a teacher
    cache must hold for a config)."""
    used = {term.source(settings) for term in registered() if getattr(settings, term.weight) > 0}
    return [s for s in SOURCES if s in used]


def _of(terms, settings, source: str | None):
    return [x for x in terms if source is None or x[0].source(settings) == source]


def teacher_states(terms: list[tuple[KDTerm, float, LayerPairs]], output: str, settings=None,
                   source: str | None = None) -> list[int]:
    """The teacher states (0 = embeddings) whose `output` ("hidden_states" or "attentions") the enabled terms
    read (those reading `source`, when given with the run's settings)."""
    return sorted({t for term, _, pairs in _of(terms, settings, source) if output in term.teacher_outputs
                   for t, _ in pairs})


def needs_output(terms: list[tuple[KDTerm, float, LayerPairs]], side: str, output: str, settings=None,
                 source: str | None = None) -> bool:
    """Whether an enabled term (reading `source`, when given) reads `output` of the `side` ("teacher" or
    "student") model."""
    return any(output in getattr(term, f"{side}_outputs") for term, _, _ in _of(terms, settings, source))
