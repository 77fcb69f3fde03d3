"""Synthetic code-switched Korean/English pediatric-ED notes, and the corpora the stand-ins learn from.

The generator exists to make DSG-KD's premise testable offline: the label depends on the Korean
prose (age, course, Korean-described signs), on the vitals, and — heavily — on the *meaning* of the
world's English clinical terms (`dsgkd.data.world`): a long tail of a few hundred, most too rare in a few
hundred labelled notes to be learned from labels, and a third held out of the labelled training notes
altogether. The domain corpus states their meanings in composed, varied sentences — some hedged, some
negated (saying nothing), some wrong, some conditional on age or signs — so a teacher pretrained on it
can know what a student trained on the notes alone cannot, but only by learning it. The general corpus
teaches a student the Korean prose and nothing about the terms. Everything is a pure function of
(world, seed): no global random state.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dsgkd.data import vocab
from dsgkd.data.vocab import (CLINICAL_LEXICON, COURSE, FILLERS_EN, FILLERS_KO, HISTORY, G_DAILY, G_EN, G_NOTE, G_TERM, G_WORDS,
                              KO_TERM_FRAMES, KOREAN_NAMES, MILD_TERMS, NEUTRAL_EN, NEUTRAL_TERMS, SEVERE_TERMS,
                              SIGNS, SYMPTOMS, josa)
from dsgkd.data.world import DEFAULT, Term, World, get_world, tier
from dsgkd.errors import UserError
from dsgkd.storage import atomic_file

__all__ = ["CLINICAL_LEXICON", "KOREAN_NAMES", "MILD_TERMS", "NEUTRAL_TERMS", "SEVERE_TERMS", "generate_notes",
           "generate_domain_corpus", "generate_general_corpus", "write_table"]


# -------------------------------------------------------------------------------------- the notes
@dataclass
class _Case:
    months: int
    english: bool
    symptoms: list[str]
    signs: list[str]
    course: str
    terms: list[Term]
    vitals: dict[str, float] = field(default_factory=dict)
    abnormal: bool = False  # abnormal vitals are always charted; normal ones only usually
    risk: float = 0.0


@dataclass(frozen=True)
class _Pool:
    """The terms a note may draw, with their draw weights: all of the world's, or the seen ones only."""

    latin: tuple[Term, ...]
    korean: tuple[Term, ...]
    scales: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the profile's (terms, prose, vitals) risk shares

    @classmethod
    def of(cls, world: World, include_held_out: bool) -> "_Pool":
        terms = tuple(t for t in world.terms if include_held_out or not t.held_out)
        p = world.profile
        return cls(terms, tuple(t for t in terms if t.korean) or terms, (p.term_scale, p.prose_scale, p.vitals_scale))


def _term_weight(t: Term, months: int, signs: list[str]) -> float:
    serious_sign = any(SIGNS[s][0] >= 1.2 for s in signs)
    return t.weight + (t.infant_shift if months < 12 else 0.0) + (t.sign_shift if serious_sign else 0.0)


def _draw_case(pool: _Pool, rng: random.Random) -> _Case:
    """The latent patient. Terms are drawn independently of the prose and vitals so that the terms'
    meaning is information no other part of the note can stand in for (except where a term's weight
    depends on age or signs, which the corpus says)."""
    u = rng.random()
    months = rng.randint(0, 2) if u < 0.15 else rng.randint(3, 23) if u < 0.4 else rng.randint(24, 180)
    english = rng.random() < 0.92
    symptoms = rng.sample(list(SYMPTOMS), rng.choice((1, 1, 2, 2, 3)))
    signs = [s for s in SIGNS if rng.random() < 0.12]
    course = rng.choice(("악화", "호전", "지속", "지속"))
    k = rng.choices((1, 2, 3, 4), weights=(0.3, 0.35, 0.25, 0.1))[0]
    candidates = pool.latin if english else pool.korean
    weights = [t.frequency for t in candidates]
    terms: list[Term] = []
    while len(terms) < min(k, len(candidates)):
        t = rng.choices(candidates, weights=weights)[0]
        if t not in terms:
            terms.append(t)
    c = _Case(months, english, symptoms, signs, course, terms)
    fever = "fever" in symptoms
    c.vitals["BT"] = round(rng.uniform(38.0, 40.5) if fever else rng.uniform(36.2, 37.5), 1)
    base_hr = 150 if months < 12 else 120 if months < 60 else 95
    tachy = rng.random() < 0.15
    c.vitals["HR"] = base_hr + rng.randint(25, 50) if tachy else base_hr + rng.randint(-15, 15)
    c.vitals["RR"] = (60 if months < 12 else 40) + rng.randint(0, 15) if rng.random() < 0.12 \
        else (35 if months < 12 else 22) + rng.randint(-5, 5)
    c.vitals["SpO2"] = rng.randint(85, 93) if rng.random() < 0.1 else rng.randint(96, 100)
    tachypnea, hypoxia, high_fever = c.vitals["RR"] >= 40 + 20 * (months < 12), c.vitals["SpO2"] < 94, \
        c.vitals["BT"] >= 39.5
    c.abnormal = tachy or tachypnea or hypoxia or high_fever
    # the profile's scales multiply each summand, in the same order: at 1.0 every float is the default's
    ts, ps, vs = pool.scales
    c.risk = (ts * sum(_term_weight(t, months, signs) for t in terms) + ps * sum(SIGNS[s][0] for s in signs)
              + ps * COURSE[course][0] + ps * (2.5 if fever and months < 3 else 0.5 if months < 3 else 0.0)
              + vs * 0.7 * tachy + vs * 0.6 * tachypnea + vs * 1.6 * hypoxia + vs * 0.3 * high_fever
              + rng.gauss(0.0, 0.4))
    return c


@functools.lru_cache(maxsize=32)
def _threshold(world_name: str, positive_rate: float) -> float:
    """Fixed per (world, rate), from a fixed calibration sample of all the world's terms, so a note's label
    never depends on which other notes were generated with it (generate_notes(n) is a prefix of
    generate_notes(n + m)), and a training file without held-out terms keeps the same risk scale."""
    rng, pool = random.Random(20240917), _Pool.of(get_world(world_name), include_held_out=True)
    risks = sorted(_draw_case(pool, rng).risk for _ in range(8000))
    return risks[int((1 - positive_rate) * len(risks))]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:] if rng.random() < 0.5 else word[:i] + word[i + 1:]


def _age(months: int, english: bool, rng: random.Random) -> str:
    if months == 0:
        age = f"생후 {rng.randint(7, 29)}일"
    elif months < 24:
        age = rng.choice((f"생후 {months}개월", f"{months}개월") + ((f"{months}mo",) if english else ()))
    else:
        age = f"{months // 12}세"
    sex = rng.choice(("남아", "여아") + (("M", "F") if english else ()))
    return f"{age}/{sex}" if sex in ("M", "F") else f"{age} {sex}"


def _render(world: World, c: _Case, rng: random.Random, history: list[str] = ()) -> str:
    en = c.english
    name = lambda s: s if en and rng.random() < 0.75 else SYMPTOMS[s]  # noqa: E731
    syms = [name(s) for s in c.symptoms]
    if "vomiting" in c.symptoms or "diarrhea" in c.symptoms:
        i = rng.randrange(len(syms))
        syms[i] += rng.choice((" x3회", " 5회", " x2", "")) if en else rng.choice((" 3회", " 여러 번"))
    onset = rng.choice((f"{rng.randint(1, 5)}일전부터", "어제부터", "오늘 아침부터", f"{rng.randint(2, 12)}시간 전부터",
                        f"내원 {rng.randint(1, 4)}일 전부터"))
    cc = f"{onset} {', '.join(syms)}" + rng.choice(("로 내원", " 있어 내원", " 있었음", " 호소", "로", ""))
    head = [_age(c.months, en, rng)] if rng.random() < 0.85 else []
    body = [rng.choice(COURSE[c.course][1])]
    for s in c.signs:
        if s == "경련" and en and rng.random() < 0.5:
            body.append(rng.choice(("seizure이후 처짐", "seizure 1회 있었음", "seizure와 fever")))
        else:
            body.append(rng.choice(SIGNS[s][1]))
    for t in c.terms:
        if t.korean and (not en or rng.random() < 0.1):
            body.append(josa(rng.choice(KO_TERM_FRAMES).format(t=t.korean), rng))
        else:
            surface = _typo(t.name, rng) if rng.random() < 0.04 else t.name
            body.append(josa(rng.choice(world.term_frames).format(t=surface), rng))
    rng.shuffle(body)
    v = c.vitals
    tail = []
    if c.abnormal or rng.random() < 0.75:
        if en:
            fmt = rng.choice(("v/s: BT {BT}, HR {HR}, RR {RR}, SpO2 {SpO2}%", "BT {BT}/HR {HR}/RR {RR}/SpO2 {SpO2}%",
                              "V/S) BT{BT} HR{HR} RR{RR} SpO2 {SpO2}%"))
        else:
            fmt = "체온 {BT}도, 맥박 {HR}회, 호흡 {RR}회, 산소포화도 {SpO2}%"
        tail.append(fmt.format(**v))
    tail += rng.sample(FILLERS_EN if en else FILLERS_KO, rng.randint(0, 2))
    parts = head + [cc] + body + tail
    if rng.random() < 0.15:  # a Korean typo somewhere in the prose
        j = rng.randrange(len(parts))
        words = parts[j].split(" ")
        w = rng.randrange(len(words))
        words[w] = _typo(words[w], rng)
        parts[j] = " ".join(words)
    out = parts[0]
    for k, p in enumerate(parts[1:], 1):
        if k == len(head) + 1 and history:  # after the complaint; no draw of `rng`, so the notes stay the same
            out += "".join(". " + h for h in history)
        out += rng.choices((", ", " ", ". ", "\n", "\t"), weights=(40, 20, 25, 12, 3))[0] + p
    return out


def generate_notes(n: int, seed: int = 0, positive_rate: float | None = None, label_noise: float | None = None,
                   *, world: str = DEFAULT, include_held_out: bool = True, history: int = 0) -> pd.DataFrame:
    """Labelled notes (PT_ID, ER_DHX, LABEL, HELD_OUT_TERM); ~10% of notes are repeat visits of an earlier
    patient, so group-wise splitting has something to do. `include_held_out=False` is a labelled training
    file: no note carries a held-out term. HELD_OUT_TERM marks the notes that do (1), where only knowledge
    from the corpus can help. Rate and noise default to the world's. `history` neutral sentences (past history,
    exam, orders) go between the complaint and the findings, so the decisive term of a long note sits late,
    past a `max_length` cut; drawn from their own generator, so `history=0` leaves every note as it was."""
    w = get_world(world)
    positive_rate = w.positive_rate if positive_rate is None else positive_rate
    label_noise = w.label_noise if label_noise is None else label_noise
    if not 0 < positive_rate < 1 or not 0 <= label_noise < 0.5:
        raise ValueError("need 0 < positive_rate < 1 and 0 <= label_noise < 0.5")
    rng, thr, pool = random.Random(seed), _threshold(world, round(positive_rate, 6)), _Pool.of(w, include_held_out)
    ids, texts, labels, held = [], [], [], []
    long_rng = random.Random(f"history-{seed}")
    for i in range(n):
        c = _draw_case(pool, rng)
        texts.append(_render(w, c, rng, [long_rng.choice(HISTORY) for _ in range(history)]))
        y = int(c.risk > thr)
        labels.append(1 - y if rng.random() < label_noise else y)
        held.append(int(any(t.held_out for t in c.terms)))
        ids.append(rng.choice(ids) if ids and rng.random() < 0.1 else f"S{seed}-{i:06d}")
    return pd.DataFrame({"PT_ID": ids, "ER_DHX": texts, "LABEL": pd.array(labels, dtype="int64"),
                         "HELD_OUT_TERM": pd.array(held, dtype="int64")})


# ------------------------------------------------------------------------------------- corpora
def _statement(world: World, t: Term, stated: float, rng: random.Random) -> str:
    """One sentence about a term: usually its severity in composed wording graded by its stated weight (its
    own, or another term's under the negative profile); sometimes hedged, sometimes wrong (the opposite
    severity), and for age- or sign-dependent terms often the condition."""
    if (t.infant_shift or t.sign_shift) and rng.random() < 0.35:
        return rng.choice(vocab.AGE_LINES if t.infant_shift else vocab.SIGN_LINES).format(t=t.name)
    weight = -stated if rng.random() < world.wrong_share else stated
    if rng.random() < 0.2:  # a code-switched Korean line, sometimes with the Korean name beside it
        surface = f"{t.name}({t.korean})" if t.korean and rng.random() < 0.5 else t.name
        return josa(rng.choice(vocab.S_KO if weight > 0 else vocab.M_KO).format(t=surface), rng)
    sentence = (f"{rng.choice(world.subjects).format(t=t.name)} {rng.choice(world.predicates[tier(weight)])}"
                f"{rng.choice(world.tails)}.")
    if rng.random() < world.hedge_share:
        sentence = rng.choice(vocab.HEDGES).format(s=sentence if sentence[:2].isupper() else
                                                   sentence[0].lower() + sentence[1:])
    return _cap(sentence)


def generate_domain_corpus(n: int, seed: int = 0, *, world: str = DEFAULT) -> list[str]:
    """Unlabelled medical sentences about every term of the world, held-out ones included. Terms are drawn
    half uniformly, half by their note frequency, so the rare ones are stated too. Severities are the world's
    stated ones (`World.stated_weight`): the true ones but under the negative profile."""
    w = get_world(world)
    rng = random.Random(seed)
    terms, freq = list(w.terms), [t.frequency for t in w.terms]
    stated = {t.name: w.stated_weight(i) for i, t in enumerate(terms)}
    severe, mild = [t for t in terms if stated[t.name] > 0], [t for t in terms if stated[t.name] <= 0]

    def term() -> Term:
        return rng.choice(terms) if rng.random() < 0.5 else rng.choices(terms, weights=freq)[0]

    out = []
    for _ in range(n):
        u = rng.random()
        if u < 1 - w.negated_share - 0.22:
            t = term()
            out.append(_statement(w, t, stated[t.name], rng))
        elif u < 1 - 0.22:
            out.append(_cap(rng.choice(vocab.NEGATED).format(t=term().name)))
        elif u < 0.88:
            pool = severe if rng.random() < 0.5 else mild
            a, b, c = (x.name for x in rng.sample(pool, 3))
            out.append(_cap(rng.choice(vocab.S_LIST if pool is severe else vocab.M_LIST).format(a=a, b=b, c=c)))
        elif u < 0.94:
            out.append(_cap(rng.choice(vocab.CONTRAST).format(s=rng.choice(severe).name, m=rng.choice(mild).name)))
        else:
            out.append(rng.choice(NEUTRAL_EN).format(sym=rng.choice(list(SYMPTOMS)).capitalize()))
    return out


def _cap(line: str) -> str:
    return line[0].upper() + line[1:] if line[0].islower() else line


def generate_general_corpus(n: int, seed: int = 0, *, world: str = DEFAULT) -> list[str]:
    """Korean everyday prose plus the Korean patterns the notes use (onset, course, signs), so a
    student can learn to read the prose; English terms appear only as bare words, never with a
    clinical context, so it learns nothing about their meaning."""
    rng = random.Random(seed)
    every_term = [*(t.name for t in get_world(world).terms), *NEUTRAL_TERMS]
    extra = {"t": lambda: rng.choice(every_term), "n": lambda: rng.randint(1, 5),
             "ksym": lambda: rng.choice(list(SYMPTOMS.values())), "ksign": lambda: rng.choice(list(SIGNS)),
             "kname": lambda: rng.choice(list(KOREAN_NAMES.values())),
             "bt": lambda: round(rng.uniform(36.5, 39.5), 1),
             "age": lambda: rng.choice((f"{rng.randint(2, 23)}개월", f"{rng.randint(2, 12)}살"))}

    class _Fill(dict):  # draw only the slots a template uses: 3x faster than filling them all
        def __missing__(self, key):
            return rng.choice(G_WORDS[key]) if key in G_WORDS else extra[key]()

    out = []
    for _ in range(n):
        u = rng.random()
        pool = G_DAILY if u < 0.5 else G_NOTE if u < 0.9 else G_EN if u < 0.97 else G_TERM
        out.append(josa(rng.choice(pool).format_map(_Fill()), rng))
    return out


def write_table(df: pd.DataFrame, path) -> None:
    """Write by suffix in UTF-8, creating parent folders (`dsgkd synth --out data/ped.csv`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".jsonl"):
        raise UserError(f"{path}: unsupported output format '{path.suffix}' (use .csv, .parquet or .jsonl)")
    with atomic_file(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False, encoding="utf-8")
        elif suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
