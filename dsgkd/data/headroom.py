"""Headroom: how much knowing the held-out terms' meaning can add to a world's labels, before anything trains.

Distillation can only help where the labels need what the teacher knows and the training notes cannot teach
it. Three logistic-regression oracles on the same training notes bound that, with no neural model:

- `prose_vitals` (a): what a model without any term knowledge can use: the note's words with every term
  mention masked, plus the vitals and age read from the text (with the generator's own abnormality cut-offs).
- `seen_terms` (b): (a) plus each term's identity, as labels can teach it (held-out terms never occur in
  the training notes, so their identities stay unlearnt).
- `term_severity` (c): (b) plus the severity sign of every term in the note from the world's truth; its
  coefficient is learnt on seen terms and applies to held-out ones, as a teacher's knowledge would.

Under the negative profile a fourth arm, `stated_severity`, uses the severities the corpus states instead of the
true ones: the most a teacher that learnt the corpus perfectly could add (nothing, if the control works).

The gap (c) - (a) on the test notes is the headroom `dsgkd table` checks (>= HEADROOM_MIN for the positive
profile); (c) - (b) is the part only held-out terms' meaning gives, what DSG-KD's held-out claim rests on.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dsgkd.data.world import World

HEADROOM_MIN = 0.10
_VITALS = {"BT": r"(?:BT ?|체온 )(\d\d\.\d)", "HR": r"(?:HR ?|맥박 )(\d+)", "RR": r"(?:RR ?|호흡 )(\d+)",
           "SpO2": r"(?:SpO2 |산소포화도 )(\d+)%"}
_TOKEN = r"[^\s,.:/()%]+"


def _term_pattern(world: World) -> tuple[re.Pattern, dict[str, int]]:
    """One regex over every term's names (English and Korean), longest first; name -> term index."""
    index = {}
    for i, t in enumerate(world.terms):
        index[t.name.lower()] = i
        if t.korean:
            index[t.korean.lower()] = i
    names = sorted(index, key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z])", re.I), index


def _months(text: str) -> float:
    if re.search(r"생후 \d+일", text):
        return 0.5
    if m := re.search(r"(\d+) ?(?:개월|mo\b)", text):
        return float(m.group(1))
    if m := re.search(r"(\d+)세", text):
        return 12.0 * int(m.group(1))
    return np.nan


def _dense(text: str) -> list[float]:
    """Vitals and age as the generator scores them: values, missing flags and its abnormality cut-offs."""
    v = {k: (float(m.group(1)) if (m := re.search(p, text)) else np.nan) for k, p in _VITALS.items()}
    months = _months(text)
    infant = months < 12 if not np.isnan(months) else False
    base_hr = 150 if infant else 120 if months < 60 else 95
    fever = bool(re.search(r"fever|발열|열이", text))
    flags = [v["BT"] >= 39.5, v["SpO2"] < 94, v["HR"] >= base_hr + 25, v["RR"] >= 40 + 20 * infant,
             months < 3, infant, fever and months < 3]
    values = [0.0 if np.isnan(x) else x for x in (*v.values(), months)]
    return [*values, *(float(np.isnan(x)) for x in (*v.values(), months)), *map(float, flags)]


def features(texts, world: World, vocabulary=None):
    """(masked bag of words, dense vitals/age, term identities, severity sign sum, stated severity sign sum)
    for `texts`; the bag's vocabulary is fitted on the first call (training notes) and passed back in for the
    test notes."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    pattern, index = _term_pattern(world)
    sign = np.array([1.0 if t.severe else -1.0 for t in world.terms])
    stated = np.array([1.0 if world.stated_weight(i) > 0 else -1.0 for i in range(len(world.terms))])
    ident = sparse.lil_matrix((len(texts), len(world.terms)))
    masked = []
    for row, text in enumerate(texts):
        for m in pattern.findall(text):
            ident[row, index[m.lower()]] = 1.0
        masked.append(pattern.sub(" ", text))
    if vocabulary is None:
        vocabulary = CountVectorizer(token_pattern=_TOKEN, binary=True, min_df=2).fit(masked)
    bag = vocabulary.transform(masked)
    dense = np.array([_dense(t) for t in texts])
    ident = ident.tocsr()
    return bag, dense, ident, (ident @ sign)[:, None], (ident @ stated)[:, None], vocabulary


def _fit_auroc(parts_tr, parts_te, y_tr, y_te, held) -> tuple[float, float]:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    xtr, xte = sparse.hstack(parts_tr).tocsr(), sparse.hstack(parts_te).tocsr()
    model = LogisticRegression(C=0.5, max_iter=3000).fit(xtr, y_tr)
    score = model.decision_function(xte)
    return float(roc_auc_score(y_te, score)), float(roc_auc_score(y_te[held], score[held]))


def headroom(train: pd.DataFrame, test: pd.DataFrame, world: World) -> dict:
    """Test AUROC of the three oracles, overall and on the held-out-term notes, and the gaps (see the module
    docstring). `train`/`test` have ER_DHX and LABEL; test has HELD_OUT_TERM."""
    bag_tr, dense_tr, id_tr, sev_tr, st_tr, vocabulary = features(train.ER_DHX.tolist(), world)
    bag_te, dense_te, id_te, sev_te, st_te, _ = features(test.ER_DHX.tolist(), world, vocabulary)
    mu, sd = dense_tr.mean(0), dense_tr.std(0) + 1e-9
    dense_tr, dense_te = (dense_tr - mu) / sd, (dense_te - mu) / sd
    y_tr, y_te = train.LABEL.to_numpy(), test.LABEL.to_numpy()
    held = test.HELD_OUT_TERM.to_numpy() == 1
    arms = {"prose_vitals": ([bag_tr, dense_tr], [bag_te, dense_te]),
            "seen_terms": ([bag_tr, dense_tr, id_tr], [bag_te, dense_te, id_te]),
            "term_severity": ([bag_tr, dense_tr, id_tr, sev_tr], [bag_te, dense_te, id_te, sev_te])}
    if world.stated:
        arms["stated_severity"] = ([bag_tr, dense_tr, id_tr, st_tr], [bag_te, dense_te, id_te, st_te])
    auroc, auroc_held = {}, {}
    for arm, (tr, te) in arms.items():
        auroc[arm], auroc_held[arm] = (round(x, 4) for x in _fit_auroc(tr, te, y_tr, y_te, held))
    gap = round(auroc["term_severity"] - auroc["prose_vitals"], 4)
    return {"world": world.name, "profile": world.profile.name, "n_train": len(train), "n_test": len(test),
            "held_out_test_share": round(float(held.mean()), 3), "test_auroc": auroc,
            "test_auroc_held_out_notes": auroc_held, "gap": gap,
            "gap_held_out_notes": round(auroc_held["term_severity"] - auroc_held["prose_vitals"], 4),
            "gap_over_seen_terms": round(auroc["term_severity"] - auroc["seen_terms"], 4),
            "gap_over_seen_terms_held_out_notes":
                round(auroc_held["term_severity"] - auroc_held["seen_terms"], 4),
            "headroom_min": HEADROOM_MIN, "headroom_ok": bool(gap >= HEADROOM_MIN)}


def headroom_of_files(paths: dict[str, str], world: World) -> dict:
    """`headroom` on a benchmark's train.csv and test.csv (`dsgkd.data.benchmark.write_benchmark`'s paths)."""
    return headroom(pd.read_csv(paths["train"]), pd.read_csv(paths["test"]), world)
