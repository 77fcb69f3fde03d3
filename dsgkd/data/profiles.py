"""Generator profiles: control worlds, where the answer is known before anything trains.

A benchmark that shows no gain from distillation cannot say why: the teacher may know nothing useful, the
labels may not need what it knows, or the distillation may fail to move it. A profile is a named set of
generator parameters applied on top of a world (`dsgkd.data.world.get_world(name, profile=...)`, or the
world spelling `W:P`), each built so that one of those answers is fixed in advance:

- `default`: today's worlds, byte for byte.
- `positive`: the terms' severity carries most of the label and half of the terms are held out of the
  labelled training notes, so knowing held-out terms must help (`dsgkd.data.headroom` checks the headroom
  with logistic oracles before anything trains), and the suggested transfer set is large enough that every
  held-out term occurs often in it.
- `negative`: the domain corpus states the severities *permuted* across terms (a fixed permutation drawn from
  the world's seed), while the notes and their labels keep the true ones (a negative world's notes are the
  default profile's, byte for byte). A teacher pretrained on it is exactly as fluent and as pretrained as the
  default one, but what it knows is wrong: distilling it must not help.
- `negative2`: the same with a second, independent permutation: the wrong-knowledge twin of a negative world's
  teacher (`wrong_knowledge_profile`), so that `dsgkd table`'s wrong-knowledge arm compares two equally fluent,
  equally wrong teachers there.

`wrong_knowledge_profile` names, for each profile, the one whose teacher is the same stand-in pretrained on a
corpus that states permuted severities: the positive profile's corpus is the default one's (a profile changes
which terms are held out and how notes weigh them, never what the corpus says), so both map to `negative`.
"""
from __future__ import annotations

from dataclasses import dataclass

from dsgkd.errors import UserError

DEFAULT_SIZES = (("train", 2000), ("val", 400), ("test", 1000), ("transfer", 2000))


@dataclass(frozen=True)
class Profile:
    """The generator parameters a profile sets; the default values are today's generator."""

    name: str
    held_out_share: float = 1 / 3   # of the world's terms never shown in labelled training notes
    term_scale: float = 1.0         # multiplies the terms' share of a note's risk score
    prose_scale: float = 1.0        # multiplies the Korean prose's share (signs, course, infant fever)
    vitals_scale: float = 1.0       # multiplies the abnormal vitals' share
    corpus_permuted: bool = False   # the domain corpus states another term's severity for each term
    permutation_salt: int = 0x5E7E21  # which permutation (xor-ed into the world's seed)
    sizes: tuple[tuple[str, int], ...] = DEFAULT_SIZES  # suggested benchmark sizes (`dsgkd synth --benchmark`)

    @property
    def suggested_sizes(self) -> dict[str, int]:
        return dict(self.sizes)


PROFILES: dict[str, Profile] = {
    "default": Profile("default"),
    # Tuned with benchmarks/headroom.py (see docs/benchmarks.md): the oracle that knows held-out terms'
    # severity sign beats the prose-and-vitals oracle by >= 0.10 test AUROC at train 2000 / test 1000.
    # A 10,000-note transfer set shows each held-out term ~40 times at the median and >= 16 times (default world,
    # seed 103; World.held_out_occurrences estimates it), against ~8 in the default 2,000.
    "positive": Profile("positive", held_out_share=1 / 2, term_scale=1.5, prose_scale=0.6, vitals_scale=0.6,
                        sizes=(("train", 2000), ("val", 400), ("test", 1000), ("transfer", 10000))),
    "negative": Profile("negative", corpus_permuted=True),
    "negative2": Profile("negative2", corpus_permuted=True, permutation_salt=0x5E7E22),
}
WRONG_KNOWLEDGE = {"default": "negative", "positive": "negative", "negative": "negative2", "negative2": "negative"}


def get_profile(name: str) -> Profile:
    """The profile called `name`; a bad name is one line naming the choices."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"profile {name!r}: choose one of {', '.join(PROFILES)}") from None


def wrong_knowledge_profile(name: str) -> str:
    """The profile whose domain corpus states permuted severities where `name`'s states others (the true ones, or
    another permutation): a teacher pretrained on it is the wrong-knowledge twin of one pretrained on `name`'s."""
    return WRONG_KNOWLEDGE[get_profile(name).name]
