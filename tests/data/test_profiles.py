"""dsgkd.data.profiles and .headroom: control worlds whose answer is known before anything trains. The default
profile is today's generator byte for byte; positive gives term knowledge headroom; negative's corpus states
permuted severities over notes that are the default profile's."""
from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dsgkd.cli import main
from dsgkd.data import synthetic as S
from dsgkd.data import vocab
from dsgkd.data.headroom import HEADROOM_MIN, headroom
from dsgkd.data.profiles import PROFILES
from dsgkd.data.world import N_TERMS, get_world
from dsgkd.errors import UserError

# sha256[:16] of the generator's output at ae27a07, before profiles existed (computed from that commit's code)
HEAD_HASHES = {
    "notes-default": "b77259722efaed11", "train-default": "1a113e4369588fbd",
    "corpus-default": "fee8d1230a326cff", "general-default": "68a612ace18e0de9",
    "notes-w2": "a261660a9f970f4b", "train-w2": "9f84be4046e33ce2",
    "corpus-w2": "50867098a72c6cb3", "general-w2": "8b36bc8b64f92c48",
}


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("world", ["default", "w2", "default:default"])
def test_default_profile_is_the_generator_before_profiles_byte_for_byte(world):
    base = world.partition(":")[0]
    assert get_world(world).name == base and get_world(world) == get_world(base, "default")
    assert _h(S.generate_notes(500, seed=7, world=world).to_csv(index=False)) == HEAD_HASHES[f"notes-{base}"]
    assert _h(S.generate_notes(300, seed=100, world=world, include_held_out=False).to_csv(index=False)) \
        == HEAD_HASHES[f"train-{base}"]
    assert _h("\n".join(S.generate_domain_corpus(2000, seed=0, world=world))) == HEAD_HASHES[f"corpus-{base}"]
    assert _h("\n".join(S.generate_general_corpus(500, seed=0, world=world))) == HEAD_HASHES[f"general-{base}"]


def test_profiles_are_named_deterministic_and_keep_the_base_worlds_terms():
    assert set(PROFILES) == {"default", "positive", "negative", "negative2"}
    for p in ("positive", "negative", "negative2"):
        w = get_world("w2", p)
        assert w is get_world(f"w2:{p}") and w.name == f"w2:{p}" and w.base == "w2" and w.profile.name == p
        base = get_world("w2")
        # the same names, weights, frequencies and conditions; only what the profile names changes
        assert [(t.name, t.weight, t.frequency, t.infant_shift) for t in w.terms] == \
               [(t.name, t.weight, t.frequency, t.infant_shift) for t in base.terms]
        pd.testing.assert_frame_equal(S.generate_notes(100, seed=3, world=w.name),
                                      S.generate_notes(100, seed=3, world=w.name))
        assert S.generate_domain_corpus(200, seed=1, world=w.name) == S.generate_domain_corpus(200, seed=1, world=w.name)
    with pytest.raises(UserError, match="profile 'bogus': choose one of default, positive, negative, negative2"):
        get_world("w2", "bogus")
    with pytest.raises(UserError, match="give the profile once"):
        get_world("w2:positive", "negative")
    with pytest.raises(UserError, match="world 'a b'"):
        get_world("a b:positive")


def test_positive_holds_out_half_the_terms_and_its_labels_follow_the_terms():
    base, pos = get_world("default"), get_world("default:positive")
    held = {t.name for t in pos.held_out()}
    assert len(held) == N_TERMS // 2 and {t.name for t in base.held_out()} < held  # grown, not redrawn
    a, b = S.generate_notes(2000, seed=5), S.generate_notes(2000, seed=5, world=pos.name)
    # the same draws, so the same texts; the labels are scored differently and more notes show a held-out term
    assert a.ER_DHX.equals(b.ER_DHX) and (a.LABEL != b.LABEL).mean() > 0.05
    assert b.HELD_OUT_TERM.mean() > a.HELD_OUT_TERM.mean() + 0.1
    train = S.generate_notes(300, seed=100, world=pos.name, include_held_out=False)
    assert not train.ER_DHX.equals(S.generate_notes(300, seed=100, include_held_out=False).ER_DHX)
    # the prose counts for less: infant fever moves the label less than in the default profile
    infant_fever = lambda df: df.ER_DHX.str.contains(r"생후 (?:\d+일|[12]개월).*(?:fever|발열)")  # noqa: E731
    lift = lambda df: df.LABEL[infant_fever(df)].mean() - df.LABEL.mean()  # noqa: E731
    assert lift(b) < lift(a) - 0.05, (lift(a), lift(b))  # 0.22 against 0.32 at seed 5
    # its suggested transfer set shows every held-out term often; the default one does not
    assert pos.profile.suggested_sizes["transfer"] >= 10000 and pos.held_out_occurrences(10000)["median"] >= 30
    assert base.held_out_occurrences(PROFILES["default"].suggested_sizes["transfer"])["median"] < 10


def _stated_severity_share(world, corpus: list[str]) -> np.ndarray:
    """Per term: the share of its statements in severe wording among those in severe or mild wording."""
    names = {t.name.lower(): i for i, t in enumerate(world.terms)}
    pattern = re.compile(r"(?<![A-Za-z])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                         + r")(?![A-Za-z])", re.I)
    severe = [p for tier in ("critical", "severe", "urgent") for p in vocab.PREDICATES[tier]]
    mild = [p for tier in ("borderline", "mild", "trivial") for p in vocab.PREDICATES[tier]]
    sev, mil = Counter(), Counter()
    for line in corpus:
        found = {names[m.lower()] for m in pattern.findall(line)}
        if len(found) == 1:
            (i,) = found
            sev[i] += any(p in line for p in severe)
            mil[i] += any(p in line for p in mild)
    return np.array([(sev[i] + 0.5) / (sev[i] + mil[i] + 1.0) for i in range(len(world.terms))])


def test_negative_corpus_states_permuted_severities_over_the_default_notes():
    base, neg = get_world("default"), get_world("default:negative")
    true = np.array([t.weight for t in neg.terms])
    stated = np.array(neg.stated)
    assert sorted(stated) == sorted(true) and (stated != true).mean() > 0.9  # a permutation of the weights
    assert 0.35 < ((stated > 0) != (true > 0)).mean() < 0.65  # about half the terms change sign
    assert neg.stated == get_world("default", "negative").stated and neg.stated != get_world("w2:negative").stated
    # labels keep the true severities: the notes are the default profile's, byte for byte
    pd.testing.assert_frame_equal(S.generate_notes(300, seed=9, world=neg.name), S.generate_notes(300, seed=9))
    # the corpus: as fluent (same sentence count and kinds), but its severities are the permuted ones
    corpus = S.generate_domain_corpus(8000, seed=0, world=neg.name)
    assert corpus != S.generate_domain_corpus(8000, seed=0)
    share = _stated_severity_share(neg, corpus)
    assert roc_auc_score(stated > 0, share) > 0.9
    assert abs(roc_auc_score(true > 0, share) - 0.5) < 0.1
    assert roc_auc_score(true > 0, _stated_severity_share(base, S.generate_domain_corpus(8000, seed=0))) > 0.9


def test_every_profile_has_a_wrong_knowledge_twin_whose_corpus_permutes_its_severities():
    """The table's fluent control: a stand-in's twin learns a corpus that states other severities for the same
    terms (another permutation where the world's own is permuted already); non-stand-ins have none."""
    from dsgkd.models.tiny import wrong_knowledge_twin

    assert wrong_knowledge_twin("kmbert-tiny") == "kmbert-tiny@default:negative"
    assert wrong_knowledge_twin("kmbert-tiny@default:positive") == "kmbert-tiny@default:negative"
    assert wrong_knowledge_twin("biobert-tiny@w2:negative") == "biobert-tiny@w2:negative2"
    assert wrong_knowledge_twin("biobert-tiny@w2:negative2") == "biobert-tiny@w2:negative"
    with pytest.raises(UserError, match="only a stand-in teacher"):
        wrong_knowledge_twin("madatnlp/km-bert")
    # the positive profile's corpus is the default one's: its twin (the negative corpus) differs only in severities
    assert S.generate_domain_corpus(300, seed=0, world="default:positive") == S.generate_domain_corpus(300, seed=0)
    one, two = np.array(get_world("w2:negative").stated), np.array(get_world("w2:negative2").stated)
    true = np.array([t.weight for t in get_world("w2").terms])
    assert sorted(two) == sorted(true) and (one != two).mean() > 0.9
    assert 0.35 < ((one > 0) != (two > 0)).mean() < 0.65  # the two wrong corpora disagree as much as either with the truth
    pd.testing.assert_frame_equal(S.generate_notes(100, seed=9, world="w2:negative2"), S.generate_notes(100, seed=9,
                                                                                                       world="w2"))


def test_synth_cli_takes_a_profile_and_names_the_choices_when_wrong(tmp_path, capsys):
    assert main(["synth", "--world", "w2", "--profile", "positive", "--benchmark", str(tmp_path / "b"),
                 "--sizes", "train=30,test=20"]) == 0
    written = pd.read_csv(tmp_path / "b" / "test.csv")
    pd.testing.assert_frame_equal(written, S.generate_notes(20, seed=102, world="w2:positive"), check_dtype=False)
    assert main(["synth", "--world", "w2:negative", "--n", "20", "--out", str(tmp_path / "n.csv")]) == 0
    assert "world w2:negative" in capsys.readouterr().out
    assert main(["synth", "--profile", "bogus", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dsgkd synth: error: profile 'bogus': choose one of default, positive, negative, negative2"]


@pytest.fixture(scope="module")
def positive_headroom():
    w = get_world("default:positive")
    return headroom(S.generate_notes(2000, seed=100, world=w.name, include_held_out=False),
                    S.generate_notes(1000, seed=102, world=w.name), w)


def test_headroom_of_the_positive_profile(positive_headroom):
    """The check `dsgkd table --profile positive` runs first: knowing held-out terms' severity beats the label
    oracle by >= 0.10 test AUROC, both over the prose-and-vitals oracle and over the one that also learnt the
    seen terms from labels."""
    r = positive_headroom
    assert r["headroom_ok"] and r["gap"] >= HEADROOM_MIN and r["gap_held_out_notes"] >= HEADROOM_MIN
    assert r["gap_over_seen_terms"] >= HEADROOM_MIN
    auroc = r["test_auroc"]
    assert auroc["prose_vitals"] < auroc["seen_terms"] < auroc["term_severity"]


def test_headroom_of_the_negative_corpus_is_nothing():
    """What a teacher that learnt the negative corpus perfectly could add: no more than labels teach."""
    w = get_world("default:negative")
    r = headroom(S.generate_notes(1000, seed=100, world=w.name, include_held_out=False),
                 S.generate_notes(600, seed=102, world=w.name), w)
    assert r["test_auroc"]["stated_severity"] < r["test_auroc"]["seen_terms"] + 0.02
    assert r["test_auroc"]["term_severity"] > r["test_auroc"]["seen_terms"] + 0.05
