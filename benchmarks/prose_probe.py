"""Can a stand-in read the notes' Korean prose? The student-side diagnostic beside benchmarks/term_probe.py.

A general student brings the prose and the labels teach the rest, so its pretraining must leave it able to
read the Korean around the terms (age, course, signs, feeding): what every row of the table builds on. Two
figures per model and its random-init twin:

- `mlm`: the build's masked-token loss on held-out blocks of its own pretraining corpus, against the loss of
  predicting every masked token by its corpus frequency (`unigram_loss`): below it, the model predicts from
  context (from the stand-in's build record, dsgkd_tiny.json; a random twin sits near ln(vocab));
- `frozen_probe`: a logistic regression on the frozen encoder's mean-pooled last layer, trained on the
  benchmark's labelled training notes and scored (val AUROC, C chosen on val) on the design validation notes,
  once on the full notes and once on their `prose` alone (every Latin-script word removed, so no English
  term is left to read). A character n-gram model on the same texts is the reference.

Design splits only (`dsgkd.data.benchmark.DATA_SEEDS` train/val), never the table's reported test split.

    python benchmarks/prose_probe.py [--world default] [--models xlmr-tiny,kobert-tiny,kmbert-tiny,biobert-tiny]
                                     [--train 2000] [--val 400]
"""
import argparse
import json
import re
import sys

import numpy as np
import torch
import transformers
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from dsgkd.data.benchmark import DATA_SEEDS
from dsgkd.data.synthetic import generate_notes
from dsgkd.models.load import load_classifier
from dsgkd.models.tiny import ensure_tiny, stand_in_ref

C_GRID = (0.01, 0.1, 1.0, 10.0)
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'/.-]*")


def prose_only(text: str) -> str:
    """The note without its Latin-script words (English terms, abbreviations, `r/o`): the Korean it is
    written in, its digits and punctuation."""
    return re.sub(r"\s+", " ", LATIN_WORD.sub(" ", text)).strip()


@torch.no_grad()
def pooled(ref: str, random_init: bool, splits: list[list[str]], batch_size: int = 64,
           max_length: int = 128) -> list[np.ndarray]:
    """Mean-pooled last-layer vectors of each list of texts, the model loaded once for all of them."""
    torch.manual_seed(0)
    tok, model = load_classifier(ref, random_init=random_init)
    model.eval()
    out = []
    for texts in splits:
        rows = []
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            last = model(**enc, output_hidden_states=True).hidden_states[-1]
            mask = enc["attention_mask"].unsqueeze(-1).to(last.dtype)
            rows.append(((last * mask).sum(1) / mask.sum(1)).numpy())
        out.append(np.concatenate(rows))
    return out


def probe_auroc(x_train, y_train, x_val, y_val) -> float:
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    return max(roc_auc_score(y_val, LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
                             .predict_proba(x_val)[:, 1]) for c in C_GRID)


def ngram_auroc(train_texts, y_train, val_texts, y_val) -> float:
    """The table's n-gram reference (`dsgkd.report.reference`) on these texts: its val AUROC, C chosen on val."""
    import datasets

    from dsgkd.data.emr import Splits
    from dsgkd.report.reference import ngram_reference

    train = datasets.Dataset.from_dict({"text": list(train_texts), "label": [int(y) for y in y_train]})
    val = datasets.Dataset.from_dict({"text": list(val_texts), "label": [int(y) for y in y_val]})
    return ngram_reference(Splits(train, val, val, 0, "prose-probe", "prose-probe"), n_boot=1)["val_auroc"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="default")
    ap.add_argument("--models", default="xlmr-tiny,kobert-tiny,kmbert-tiny,biobert-tiny")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=400)
    args = ap.parse_args()
    transformers.logging.set_verbosity_error()  # one load report per model and init would bury the figures
    train = generate_notes(args.train, seed=DATA_SEEDS["train"], world=args.world, include_held_out=False)
    val = generate_notes(args.val, seed=DATA_SEEDS["val"], world=args.world)
    texts = {"full": (train["ER_DHX"].tolist(), val["ER_DHX"].tolist())}
    texts["prose"] = tuple([prose_only(t) for t in split] for split in texts["full"])
    y_train, y_val = train["LABEL"].to_numpy(), val["LABEL"].to_numpy()
    results = {"world": args.world, "notes": {"train": args.train, "val": args.val},
               "ngram_val_auroc": {k: round(ngram_auroc(a, y_train, b, y_val), 4) for k, (a, b) in texts.items()},
               "models": []}
    for name in args.models.split(","):
        ref = stand_in_ref(name, args.world)
        record = json.loads((ensure_tiny(ref) / "dsgkd_tiny.json").read_text(encoding="utf-8"))
        for random_init in (False, True):
            vectors = iter(pooled(ref, random_init, [split for pair in texts.values() for split in pair]))
            probe = {kind: round(probe_auroc(next(vectors), y_train, next(vectors), y_val), 4) for kind in texts}
            row = {"model": ref, "init": "random" if random_init else "pretrained", "frozen_probe_val_auroc": probe}
            if not random_init:
                row["mlm"] = {k: record[k] for k in ("mlm_loss_before", "mlm_loss_after", "unigram_loss")}
            results["models"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
