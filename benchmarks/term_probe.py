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

from dsgkd.data.world import get_world
from dsgkd.experiments.term_probe import severity_auroc, term_vectors
from dsgkd.models.tiny import stand_in_ref


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
