"""dsgkd.data.synthetic and .world: deterministic worlds and realistic-looking notes whose labels need the
terms' meaning, a third of which no labelled training note shows."""
from __future__ import annotations

import re
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dsgkd.data import synthetic as S
from dsgkd.data import vocab
from dsgkd.data.emr import load_labelled
from dsgkd.data.world import N_TERMS, get_world
from dsgkd.errors import UserError

WORLD = get_world()
WEIGHT = {t.name: t.weight for t in WORLD.terms}
TERMS = list(WEIGHT)
HELD_OUT = {t.name for t in WORLD.held_out()}


@pytest.fixture(scope="module")
def notes() -> pd.DataFrame:
    return S.generate_notes(3000, seed=0)


def test_lexicons():
    assert len(S.SEVERE_TERMS) >= 35 and len(S.MILD_TERMS) >= 35
    assert all(w > 0 for w in S.SEVERE_TERMS.values()) and all(w < 0 for w in S.MILD_TERMS.values())
    assert not set(S.SEVERE_TERMS) & set(S.MILD_TERMS)
    assert S.CLINICAL_LEXICON == {t.lower() for t in (*S.SEVERE_TERMS, *S.MILD_TERMS)}
    # the default world: the real vocabulary plus invented terms, a long tail, a third held out
    assert len(TERMS) == len({t.lower() for t in TERMS}) == N_TERMS and {*S.SEVERE_TERMS, *S.MILD_TERMS} <= set(TERMS)
    assert len(HELD_OUT) == N_TERMS // 3 and 0.3 < np.mean([WEIGHT[t] > 0 for t in HELD_OUT]) < 0.6
    freq = sorted((t.frequency for t in WORLD.terms), reverse=True)
    assert sum(freq[:30]) > 0.25 * sum(freq) and freq[0] > 20 * freq[-1]
    assert {"r/o", "v/s", "PE", "Hx", "PMHx", "Abd.", "T-tube", "BT", "HR", "SpO2", "x3", "f/u"} <= set(S.NEUTRAL_TERMS)
    assert not {t.lower() for t in S.NEUTRAL_TERMS} & S.CLINICAL_LEXICON


def test_worlds_are_deterministic_and_different():
    assert get_world("w2") == get_world("w2") and get_world("w2").terms != get_world("w3").terms
    names = {w: {t.name.lower() for t in get_world(w).terms} for w in ("default", "w2", "w3")}
    for a, b in (("default", "w2"), ("w2", "w3"), ("default", "w3")):
        assert len(names[a] & names[b]) < 0.5 * N_TERMS, (a, b)
    pd.testing.assert_frame_equal(S.generate_notes(200, seed=4, world="w2"), S.generate_notes(200, seed=4, world="w2"))
    assert S.generate_domain_corpus(300, seed=1, world="w2") == S.generate_domain_corpus(300, seed=1, world="w2")
    assert not S.generate_notes(200, seed=4, world="w2").ER_DHX.equals(S.generate_notes(200, seed=4).ER_DHX)
    with pytest.raises(UserError, match="world 'a b'"):
        get_world("a b")


def test_held_out_terms_are_in_the_corpus_and_test_notes_but_never_in_training_notes():
    train = S.generate_notes(3000, seed=1, include_held_out=False)
    test = S.generate_notes(2000, seed=2)
    in_train, in_test = _counts(train.ER_DHX), _counts(test.ER_DHX)
    corpus = _counts(S.generate_domain_corpus(8000, seed=0))
    assert not HELD_OUT & set(in_train) and train.HELD_OUT_TERM.sum() == 0
    assert len(HELD_OUT & set(in_test)) > 0.5 * len(HELD_OUT) and 0.3 < test.HELD_OUT_TERM.mean() < 0.7
    assert min(corpus[t] for t in HELD_OUT) >= 5  # every held-out term is stated in the corpus
    flagged = test.ER_DHX[test.HELD_OUT_TERM == 1].map(lambda x: bool(HELD_OUT & set(_counts([x]))))
    assert flagged.mean() > 0.8  # the flag marks the notes that show one (Korean names and typos aside)
    # the same risk scale: a training file without held-out terms keeps the world's prevalence roughly
    assert abs(train.LABEL.mean() - test.LABEL.mean()) < 0.1


def test_deterministic(notes):
    pd.testing.assert_frame_equal(notes, S.generate_notes(3000, seed=0))
    assert not S.generate_notes(200, seed=1).equals(notes.head(200))
    # a note's label never depends on how many notes were generated with it
    pd.testing.assert_frame_equal(S.generate_notes(100, seed=0), notes.head(100))
    assert S.generate_domain_corpus(500, seed=3) == S.generate_domain_corpus(500, seed=3)
    assert S.generate_domain_corpus(500, seed=3) != S.generate_domain_corpus(500, seed=4)
    assert S.generate_general_corpus(500, seed=3) == S.generate_general_corpus(500, seed=3)
    assert S.generate_general_corpus(500, seed=3) != S.generate_general_corpus(500, seed=4)


def test_columns_and_rate(notes):
    assert list(notes.columns) == ["PT_ID", "ER_DHX", "LABEL", "HELD_OUT_TERM"]
    assert notes.LABEL.dtype == np.int64 and set(notes.LABEL) == {0, 1}
    assert 0.35 <= notes.LABEL.mean() <= 0.45
    assert 0.02 < notes.PT_ID.duplicated().mean() < 0.2  # repeat visits, for group-wise splits
    assert 0.2 < S.generate_notes(2000, seed=5, positive_rate=0.25, label_noise=0.0).LABEL.mean() < 0.3
    with pytest.raises(ValueError):
        S.generate_notes(10, positive_rate=1.5)


def test_looks_like_ed_notes(notes):
    text = notes.ER_DHX
    frac = lambda pat: text.str.contains(pat, regex=True).mean()  # noqa: E731
    assert frac(r"[A-Za-z][가-힣]") > 0.3            # particles on English words: fever로, cough와
    assert frac(r"seizure이후|fever로|r/o ") > 0.2
    assert frac(r"\d+일전부터|\d+개월|\d+세") > 0.7
    assert frac(r"SpO2 \d+%|BT ?\d\d\.\d") > 0.5
    assert frac(r"\n") > 0.2 and frac(r"\t") > 0.01
    assert 0.02 < (~text.str.contains(r"[A-Za-z]")).mean() < 0.2  # some notes with no English at all
    assert frac(r"처짐|처져|잘 먹지 않음|경련|청색증|호흡곤란|잘 놀고 잘 먹음") > 0.3
    known = {t for t in TERMS}
    typo = re.compile(r"r/o ([a-z]{6,})")
    misspelt = {m for x in text for m in typo.findall(x) if m not in known}
    assert misspelt, "expected occasional typos in English terms"


def test_fast():
    t = time.perf_counter()
    S.generate_notes(4000, seed=11)
    S.generate_domain_corpus(20000, seed=11)
    S.generate_general_corpus(20000, seed=11)
    assert time.perf_counter() - t < 5


_ANY_TERM = re.compile(r"(?<![A-Za-z])(" + "|".join(re.escape(t) for t in sorted(TERMS, key=len, reverse=True))
                       + r")(?![A-Za-z])", re.IGNORECASE)
_CANON = {t.lower(): t for t in TERMS}


def _counts(corpus: list[str]) -> Counter:
    """Sentences mentioning each term (one regex pass, not one per term)."""
    return Counter(t for x in corpus for t in {_CANON[m.lower()] for m in _ANY_TERM.findall(x)})


def _count(corpus: list[str], t: str) -> int:
    return _counts(corpus)[t]


def test_domain_corpus_states_every_term_with_its_severity_imperfectly():
    corpus = S.generate_domain_corpus(20000, seed=0)
    counts = _counts(corpus)
    assert min(counts[t] for t in TERMS) >= 15, min(TERMS, key=counts.__getitem__)
    assert any(re.search(r"[가-힣]", x) for x in corpus)  # some code-switched lines
    assert len(set(corpus)) > 0.8 * len(corpus)  # composed wording: frames do not repeat
    severe_words = [p for tier in ("critical", "severe", "urgent") for p in vocab.PREDICATES[tier]]
    mild_words = [p for tier in ("borderline", "mild", "trivial") for p in vocab.PREDICATES[tier]]
    sev = [x for x in corpus if any(p in x for p in severe_words)]
    mild = [x for x in corpus if any(p in x for p in mild_words)]
    in_sev, in_mild = _counts(sev), _counts(mild)
    right = sum(in_sev[t] if WEIGHT[t] > 0 else in_mild[t] for t in TERMS)
    wrong = sum(in_mild[t] if WEIGHT[t] > 0 else in_sev[t] for t in TERMS)
    assert 0.02 < wrong / (right + wrong) < 0.12  # mostly right, some statements wrong
    assert sum(x.startswith(("Reportedly", "It is possible", "Some clinicians")) for x in corpus) > 500  # hedged
    assert sum(any(x.startswith(n.split("{t}")[0]) or n.split("{t}")[1] in x for n in vocab.NEGATED)
               for x in corpus) > 800  # negated: mentions that say nothing about severity
    conditional = [t.name for t in WORLD.terms if t.infant_shift]
    assert conditional and sum("infants" in x and bool(_counts([x])) for x in corpus) > 100


def test_general_corpus_has_no_term_meanings():
    corpus = S.generate_general_corpus(20000, seed=0)
    assert sum(bool(re.search(r"[가-힣]", x)) for x in corpus) > 0.95 * len(corpus)
    mentions = sum(_counts(corpus).values())
    assert mentions < 0.04 * len(corpus)
    assert not any(w in x for x in corpus for w in ("PICU", "emergent", "self-limited", "응급", "입원"))


def _term_features(texts) -> np.ndarray:
    index = {t: i for i, t in enumerate(TERMS)}
    x = np.zeros((len(texts), len(TERMS)))
    for row, text in enumerate(texts):
        for m in _ANY_TERM.findall(text):
            x[row, index[_CANON[m.lower()]]] = 1.0
    return x


def test_term_meaning_carries_signal_beyond_few_labels():
    """The design goal: knowing each term's severity beats learning term identities from 300 notes."""
    w = np.array([WEIGHT[t] for t in TERMS])
    gains = []
    for seed in (0, 1):
        train, test = S.generate_notes(600, seed=seed), S.generate_notes(1500, seed=100 + seed)
        xtr, xte = _term_features(train.ER_DHX), _term_features(test.ER_DHX)
        ident = LogisticRegression(max_iter=2000).fit(xtr, train.LABEL)
        sev = LogisticRegression(max_iter=2000).fit((xtr @ w)[:, None], train.LABEL)
        auc_id = roc_auc_score(test.LABEL, ident.decision_function(xte))
        auc_sev = roc_auc_score(test.LABEL, sev.decision_function((xte @ w)[:, None]))
        assert auc_sev > 0.78, auc_sev
        gains.append(auc_sev - auc_id)
    assert np.mean(gains) > 0.04, gains


def test_label_also_depends_on_korean_prose(notes):
    severe_ko = notes.ER_DHX.str.contains("처짐|처져|청색증|의식 저하|숨쉬기 힘들어함|호흡곤란")
    assert notes.LABEL[severe_ko].mean() > notes.LABEL[~severe_ko].mean() + 0.1
    infant_fever = notes.ER_DHX.str.contains(r"생후 (?:\d+일|[12]개월).*(?:fever|발열)", regex=True)
    assert notes.LABEL[infant_fever].mean() > notes.LABEL.mean() + 0.15


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_write_table_roundtrip(tmp_path, suffix):
    df = S.generate_notes(50, seed=2)
    p = tmp_path / "sub" / f"ped{suffix}"
    S.write_table(df, p)
    ds, dropped = load_labelled(p, "ER_DHX", "LABEL", group_col="PT_ID")
    assert dropped == 0 and ds["text"] == df.ER_DHX.tolist() and ds["label"] == df.LABEL.tolist()
    assert ds["group"] == df.PT_ID.tolist()


def test_history_puts_the_findings_late_and_changes_nothing_else():
    from dsgkd.data.synthetic import generate_notes

    short, long = generate_notes(200, seed=3), generate_notes(200, seed=3, history=12)
    assert short[["PT_ID", "LABEL", "HELD_OUT_TERM"]].equals(long[["PT_ID", "LABEL", "HELD_OUT_TERM"]])
    assert generate_notes(200, seed=3, history=0).equals(short)
    for s, l in zip(short["ER_DHX"], long["ER_DHX"]):
        assert len(l) > len(s) + 12 * 4 and l.endswith(s[-20:])  # the findings and vitals follow the history
