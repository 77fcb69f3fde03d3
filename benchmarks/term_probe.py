"""Does a model's term vector encode what the term means? The diagnostic behind docs/results.md.

For every clinical term of the synthetic benchmark (42 severe, 42 mild), the model reads the term in a
few note-like frames; its vector per hidden layer is the mean over the term's tokens and frames. Score:
leave-one-out, the cosine of the held-out term's (centred) vector with the severe-minus-mild centroid
direction of the other 83; reported as the AUROC of that score against severity (0.5: no knowledge;
leave-one-out pulls a structureless set slightly below 0.5). A teacher that scores near 0.5 has no
severity to distil, whatever the loss.

    python benchmarks/term_probe.py [--models kmbert-tiny,biobert-tiny,xlmr-tiny,kobert-tiny] [--random]
"""
import argparse
import json

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from dsgkd.align import char_to_token_spans
from dsgkd.data.synthetic import MILD_TERMS, SEVERE_TERMS
from dsgkd.models.load import load_classifier

FRAMES = ["r/o {t}", "{t} 의심", "local에서 {t} 소견 듣고 옴", "Imp) {t}", "3일전부터 fever, {t} 가능성 있음"]


@torch.no_grad()
def term_vectors(ref: str, random_init: bool) -> np.ndarray:
    """[terms, layers + 1, width]."""
    torch.manual_seed(0)
    tok, model = load_classifier(ref, random_init=random_init)
    model.eval()
    out = []
    for term in [*SEVERE_TERMS, *MILD_TERMS]:
        per_frame = []
        for frame in FRAMES:
            text = frame.format(t=term)
            start = text.index(term)
            enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
            (a, b), = char_to_token_spans(enc["offset_mapping"][0].tolist(), [(start, start + len(term))])
            states = model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
            per_frame.append(torch.stack([h[0, a:b].mean(0) for h in states]))
        out.append(torch.stack(per_frame).mean(0))
    return torch.stack(out).numpy()


def severity_auroc(vectors: np.ndarray, severe: np.ndarray) -> float:
    x = vectors - vectors.mean(0)
    scores = []
    for i in range(len(x)):
        rest = np.arange(len(x)) != i
        direction = x[rest & severe].mean(0) - x[rest & ~severe].mean(0)
        scores.append(x[i] @ direction / (np.linalg.norm(x[i]) * np.linalg.norm(direction) + 1e-9))
    return float(roc_auc_score(severe, scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="kmbert-tiny,biobert-tiny,xlmr-tiny,kobert-tiny")
    ap.add_argument("--random", action="store_true", help="also probe each model's random-init twin")
    args = ap.parse_args()
    severe = np.array([True] * len(SEVERE_TERMS) + [False] * len(MILD_TERMS))
    results = []
    for ref in args.models.split(","):
        for random_init in (False, True) if args.random else (False,):
            v = term_vectors(ref, random_init)
            results.append({"model": ref, "init": "random" if random_init else "pretrained",
                            "severity_auroc_per_layer": [round(severity_auroc(v[:, layer], severe), 3)
                                                         for layer in range(v.shape[1])]})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
