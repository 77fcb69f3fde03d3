"""A world: everything the synthetic benchmark draws from, as a pure function of its name.

A benchmark whose vocabulary is fixed invites design decisions fitted to it; a world is drawn from a name, so
a design can be tried on worlds other than the reported one and a result checked on a world never seen. A
world fixes its term lexicon (names, severity weights, how often each occurs in notes, which terms are
*held out* of the labelled training notes, which depend on age or co-occurring signs), the subsets of note
frames and corpus phrasings it uses, and its prevalence and noise. The default world keeps the real clinical
vocabulary of the original benchmark and adds invented terms to reach a long tail; any other name gives a
world of invented terms only, so two worlds share few term names.

A world may carry a profile (`dsgkd.data.profiles`: `default`, `positive`, `negative`, `negative2`), spelt `W:P`
wherever a world name goes (`--world w2:negative`, `kmbert-tiny@w2:negative`), so the profile is part of every key a
world name makes: cached thresholds, stand-in teachers (which hash their corpora besides), protocols. The
profile changes only what it names; the terms' names, weights and frequencies are the base world's.

Held-out terms are the point: they appear in the domain corpus (so a teacher can learn them by MLM), in
unlabelled transfer notes and in validation and test notes, never in labelled training notes. Labels alone
cannot teach them; an n-gram model cannot see them; only knowledge from the corpus can.
"""
from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass

from dsgkd.data import vocab
from dsgkd.data.profiles import PROFILES, Profile, get_profile
from dsgkd.errors import UserError

DEFAULT = "default"
N_TERMS = 300
HELD_OUT_SHARE = PROFILES["default"].held_out_share
_ONSETS = ["b", "br", "c", "ch", "d", "dr", "f", "g", "gl", "h", "k", "l", "m", "n", "p", "ph", "pl", "pr", "qu",
           "r", "s", "sc", "st", "t", "th", "tr", "v", "x", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "io", "y"]
_CODAS = ["", "", "", "n", "r", "s", "l", "x", "m"]
# suffixes are drawn independently of severity, so a term's spelling never tells its meaning
_SUFFIXES = ["itis", "osis", "emia", "oma", "algia", "ectasia", "uria", "opathy", "plegia", "rrhea", "", ""]
_WORDS = ["", "", "", "", "", " syndrome", " disease", " palsy"]


@dataclass(frozen=True)
class Term:
    name: str
    weight: float          # contribution to a note's risk score; > 0 severe, < 0 mild
    frequency: float       # relative draw weight in notes (a long tail: a few common, most rare)
    held_out: bool         # never in labelled training notes
    infant_shift: float = 0.0   # added to the weight for a child under 12 months
    sign_shift: float = 0.0     # added when the note shows a serious sign (weight >= 1.2)
    korean: str | None = None   # a Korean name the notes may use instead

    @property
    def severe(self) -> bool:
        return self.weight > 0


@dataclass(frozen=True)
class World:
    name: str
    terms: tuple[Term, ...]
    positive_rate: float
    label_noise: float
    wrong_share: float      # corpus statements that give the opposite severity
    hedge_share: float
    negated_share: float
    term_frames: tuple[str, ...]
    subjects: tuple[str, ...]
    predicates: dict
    tails: tuple[str, ...]
    profile: Profile = PROFILES["default"]
    stated: tuple[float, ...] = ()  # the weight the domain corpus states for each term (permuted: negative)

    def held_out(self) -> list[Term]:
        return [t for t in self.terms if t.held_out]

    @property
    def base(self) -> str:
        """The world's name without its profile: what its terms are drawn from."""
        return self.name.partition(":")[0]

    def stated_weight(self, i: int) -> float:
        return self.stated[i] if self.stated else self.terms[i].weight

    def held_out_occurrences(self, n_notes: int) -> dict[str, float]:
        """Expected occurrences per held-out term in `n_notes` notes with all terms (transfer, val, test):
        median and minimum over the held-out terms, from the draw weights (2.15 terms a note on average;
        English and Korean-named draws pooled). Whether a transfer set lets a student meet every term."""
        total = sum(t.frequency for t in self.terms)
        counts = sorted(n_notes * 2.15 * t.frequency / total for t in self.held_out())
        return {"median": round(counts[len(counts) // 2], 1), "min": round(counts[0], 1)}


def world_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"dsgkd-world:{name}".encode()).digest()[:8], "big")


def _invented(rng: random.Random, taken: set[str]) -> str:
    while True:
        if rng.random() < 0.08:  # an acronym, as notes use (BRUE, HUS)
            name = "".join(rng.choice("BCDFHKLMNPRSTVX") for _ in range(rng.choice((3, 3, 4))))
        else:
            stem = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                           for _ in range(rng.choice((1, 2, 2, 3))))
            name = stem + rng.choice(_SUFFIXES) + rng.choice(_WORDS)
        if 5 <= len(name) <= 22 and name.lower() not in taken:
            taken.add(name.lower())
            return name


def _subset(rng: random.Random, pool: list[str], share: float) -> tuple[str, ...]:
    return tuple(sorted(rng.sample(pool, max(2, round(share * len(pool)))), key=pool.index))


def get_world(name: str = DEFAULT, profile: str | None = None) -> World:
    """The world named `name` (any non-empty string of letters, digits, '-', '_'), optionally with a profile,
    given as `profile` or spelt `name:profile`; same name and profile, same world. The returned world's name
    is the canonical spelling: `name` for the default profile, `name:profile` for any other."""
    base, colon, suffix = name.partition(":")
    if colon and profile and suffix != profile:
        raise UserError(f"world {name!r} with profile {profile!r}: give the profile once")
    return _world(base, get_profile(profile or (suffix if colon else "default")).name)


@functools.lru_cache(maxsize=32)
def _world(name: str, profile_name: str) -> World:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise UserError(f"world {name!r}: use letters, digits, '-' or '_' (e.g. --world w2)")
    profile = PROFILES[profile_name]
    rng = random.Random(world_seed(name))
    default = name == DEFAULT
    real = [(t, w) for t, w in (*vocab.SEVERE_TERMS.items(), *vocab.MILD_TERMS.items())] if default else []
    taken = {t.lower() for t, _ in real} | {t.lower() for t in vocab.NEUTRAL_TERMS}
    drawn = []
    for _ in range(N_TERMS - len(real)):
        severe = rng.random() < 0.45
        weight = rng.uniform(0.8, 3.0) if severe else -rng.uniform(0.5, 1.8)
        drawn.append((_invented(rng, taken), round(weight, 2)))
    named = real + drawn
    ranks = list(range(len(named)))
    rng.shuffle(ranks)
    held = set(rng.sample(range(len(named)), round(HELD_OUT_SHARE * len(named))))
    if profile.held_out_share != HELD_OUT_SHARE:
        held = _reshare(held, len(named), profile.held_out_share, world_seed(name))
    terms = []
    for i, (term, weight) in enumerate(named):
        u = rng.random()
        terms.append(Term(
            term, weight, frequency=round(1.0 / (ranks[i] + 8) ** 0.9, 6), held_out=i in held,
            infant_shift=round(rng.uniform(1.0, 2.0), 2) if u < 0.12 and weight < 1.5 else 0.0,
            sign_shift=round(rng.uniform(0.8, 1.6), 2) if 0.12 <= u < 0.22 and weight < 1.5 else 0.0,
            korean=vocab.KOREAN_NAMES.get(term) if default else None))
    share = 1.0 if default else 0.7
    stated = ()
    if profile.corpus_permuted:
        stated = [t.weight for t in terms]
        random.Random(world_seed(name) ^ profile.permutation_salt).shuffle(stated)
        stated = tuple(stated)
    return World(
        name=name if profile_name == "default" else f"{name}:{profile_name}", terms=tuple(terms),
        profile=profile, stated=stated,
        positive_rate=0.4 if default else round(rng.uniform(0.3, 0.5), 2),
        label_noise=0.05 if default else round(rng.uniform(0.03, 0.08), 3),
        wrong_share=0.06 if default else round(rng.uniform(0.04, 0.1), 3),
        hedge_share=0.12 if default else round(rng.uniform(0.08, 0.18), 3),
        negated_share=0.08 if default else round(rng.uniform(0.05, 0.12), 3),
        term_frames=_subset(rng, vocab.TERM_FRAMES, share), subjects=_subset(rng, vocab.SUBJECTS, share),
        predicates={tier: _subset(rng, pool, share) for tier, pool in vocab.PREDICATES.items()},
        tails=_subset(rng, vocab.TAILS, share))


def _reshare(held: set[int], n: int, share: float, seed: int) -> set[int]:
    """The default draw's held-out terms, grown (or thinned) to `share` by a separate generator, so that
    a profile changes which terms are held out and nothing else about the world."""
    rng, k = random.Random(seed ^ 0x4E1D), round(share * n)
    if k <= len(held):
        return set(rng.sample(sorted(held), k))
    return held | set(rng.sample(sorted(set(range(n)) - held), k - len(held)))


def tier(weight: float) -> str:
    """The strength of wording a corpus statement uses for a term of this weight."""
    if weight >= 2.5:
        return "critical"
    if weight >= 1.6:
        return "severe"
    if weight > 0:
        return "urgent"
    if weight > -0.8:
        return "borderline"
    return "mild" if weight > -1.5 else "trivial"
