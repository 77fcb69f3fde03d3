"""The non-neural reference a transformer row must beat: character n-gram TF-IDF + logistic regression.

A gain of DSG-KD over its control means little when both sit below a bag of character n-grams on the
same notes, so the demo (and any table) prints this row beside them. Same splits, same threshold rule,
same bootstrap as a trained student; C is chosen on validation AUROC, test is read once.
"""
from __future__ import annotations

import numpy as np

from dsgkd.core.metrics import choose_threshold, evaluate_with_ci
from dsgkd.data.emr import Splits

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
NGRAMS = (2, 5)


def ngram_reference(splits: Splits, *, threshold_rule: str = "f1", n_boot: int = 1000, seed: int = 0) -> dict:
    """{"C", "val_auroc", "threshold", "test": {metric: {value, ci_low, ci_high}}} of the reference, and its test
    labels and probabilities ("test_labels", "test_probs") for comparisons on the same notes."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True, min_df=2)
    x_train = vectorizer.fit_transform(splits.train["text"])
    x_val, x_test = vectorizer.transform(splits.val["text"]), vectorizer.transform(splits.test["text"])
    y_train, y_val, y_test = (np.asarray(s["label"]) for s in (splits.train, splits.val, splits.test))
    fits = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        fits[c] = (roc_auc_score(y_val, model.predict_proba(x_val)[:, 1]), model)
    best_c = max(C_GRID, key=lambda c: fits[c][0])  # ties: the smaller C, the stronger regularisation
    val_auroc, model = fits[best_c]
    threshold = choose_threshold(y_val, model.predict_proba(x_val)[:, 1], threshold_rule)
    probs = model.predict_proba(x_test)[:, 1]
    test = evaluate_with_ci(y_test, probs, threshold, n_boot=n_boot, seed=seed)
    return {"C": best_c, "val_auroc": float(val_auroc), "threshold": float(threshold), "test": test,
            "test_labels": y_test, "test_probs": probs}
