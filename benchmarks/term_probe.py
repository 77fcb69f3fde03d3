"""Does a model's term vector encode what the term means? The diagnostic behind docs/results.md.

For every clinical term of a synthetic world (300 in the default one), the model reads the term in a few
note-like frames; its vector per hidden layer is the mean over the term's tokens and frames. Score:
leave-one-out, the cosine of the left-out term's (centred) vector with the severe-minus-mild centroid
direction of all the others; reported as the AUROC of that score against severity (0.5: no knowledge;
leave-one-out pulls a structureless set slightly below 0.5), over all terms and separately over the seen
terms and the world's held-out terms (those no labelled training note shows: the teacher can only know
them from the corpus). A teacher that scores near 0.5 has no severity to distil, whatever the loss.

Under the negative profile (`--world W:negative`) it also scores against the severities the corpus states.

    python benchmarks/term_probe.py [--world default] [--models kmbert-tiny,biobert-tiny,xlmr-tiny,kobert-tiny]
                                    [--random]
"""
import argparse
import json

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from dsgkd.core.align import char_to_token_spans
from dsgkd.data.world import get_world
from dsgkd.models.load import load_classifier
from dsgkd.models.tiny import stand_in_ref

FRAMES = ["r/o {t}", "{t} 의심", "local에서 {t} 소견 듣고 옴", "Imp) {t}", "3일전부터 fever, {t} 가능성 있음"]


@torch.no_grad()
def term_vectors(ref: str, random_init: bool, terms: list[str], batch_size: int = 64) -> np.ndarray:
    """[terms, layers + 1, width]: every (term, frame) text in padded batches."""
    torch.manual_seed(0)
    tok, model = load_classifier(ref, random_init=random_init)
    model.eval()
    texts = [(i, frame.format(t=term)) for i, term in enumerate(terms) for frame in FRAMES]
    sums = None
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        enc = tok([t for _, t in chunk], return_offsets_mapping=True, return_tensors="pt", padding=True)
        offsets = enc.pop("offset_mapping")
        states = torch.stack(model(**enc, output_hidden_states=True).hidden_states, 1)  # [batch, layers+1, seq, w]
        if sums is None:
            sums = torch.zeros(len(terms), states.shape[1], states.shape[-1])
        for row, (i, text) in enumerate(chunk):
            begin = text.index(terms[i])
            (a, b), = char_to_token_spans(offsets[row].tolist(), [(begin, begin + len(terms[i]))])
            sums[i] += states[row, :, a:b].mean(1)
    return (sums / len(FRAMES)).numpy()


def severity_scores(vectors: np.ndarray, severe: np.ndarray) -> np.ndarray:
    x = vectors - vectors.mean(0)
    scores = []
    for i in range(len(x)):
        rest = np.arange(len(x)) != i
        direction = x[rest & severe].mean(0) - x[rest & ~severe].mean(0)
        scores.append(x[i] @ direction / (np.linalg.norm(x[i]) * np.linalg.norm(direction) + 1e-9))
    return np.array(scores)


def severity_auroc(vectors: np.ndarray, severe: np.ndarray, subset: np.ndarray | None = None) -> float:
    scores = severity_scores(vectors, severe)
    keep = np.ones(len(severe), bool) if subset is None else subset
    return float(roc_auc_score(severe[keep], scores[keep]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="default", help="synthetic world (its stand-ins: name@world)")
    ap.add_argument("--models", default="kmbert-tiny,biobert-tiny,xlmr-tiny,kobert-tiny")
    ap.add_argument("--random", action="store_true", help="also probe each model's random-init twin")
    args = ap.parse_args()
    world = get_world(args.world)
    terms = [t.name for t in world.terms]
    severe = np.array([t.severe for t in world.terms])
    held = np.array([t.held_out for t in world.terms])
    stated = np.array([world.stated_weight(i) > 0 for i in range(len(terms))])  # the corpus's (negative: permuted)
    results = []
    for name in args.models.split(","):
        ref = stand_in_ref(name, world.name)
        for random_init in (False, True) if args.random else (False,):
            v = term_vectors(ref, random_init, terms)
            per_layer = {part: [round(severity_auroc(v[:, layer], severe, subset), 3) for layer in range(v.shape[1])]
                         for part, subset in (("all", None), ("seen", ~held), ("held_out", held))}
            results.append({"model": ref, "world": world.name, "init": "random" if random_init else "pretrained",
                            "terms": {"seen": int((~held).sum()), "held_out": int(held.sum())},
                            "severity_auroc_per_layer": per_layer["all"],
                            "seen_auroc_per_layer": per_layer["seen"],
                            "held_out_auroc_per_layer": per_layer["held_out"]})
            if world.stated:  # negative profile: what the teacher learnt is the corpus's severities, not the truth
                results[-1]["stated_severity_auroc_per_layer"] = [round(severity_auroc(v[:, layer], stated), 3)
                                                                  for layer in range(v.shape[1])]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
