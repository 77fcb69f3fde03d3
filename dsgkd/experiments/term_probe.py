"""Does a model's term vector encode what the term means? The held-out-term probe of teachers and students.

For every clinical term of a synthetic world (300 in the default one), the model reads the term in a few
note-like frames; its vector per hidden layer is the mean over the term's tokens and frames. Score:
leave-one-out, the cosine of the left-out term's (centred) vector with the severe-minus-mild centroid
direction of all the others; reported as the AUROC of that score against severity (0.5: no knowledge;
leave-one-out pulls a structureless set slightly below 0.5), over all terms and separately over the seen
terms and the world's held-out terms (those no labelled training note shows: a model can only know them from
the corpus, or from a teacher that does). It is the direct measure of what DSG-KD claims to move.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from dsgkd.core.align import char_to_token_spans
from dsgkd.data.world import get_world

FRAMES = ["r/o {t}", "{t} 의심", "local에서 {t} 소견 듣고 옴", "Imp) {t}", "3일전부터 fever, {t} 가능성 있음"]


def term_vectors(ref: str, random_init: bool, terms: list[str], batch_size: int = 64) -> np.ndarray:
    """[terms, layers + 1, width]: every (term, frame) text in padded batches. Torch loads here, not on import:
    the table's statistics read probe files without it."""
    import torch

    from dsgkd.models.load import load_classifier

    torch.manual_seed(0)
    tok, model = load_classifier(ref, random_init=random_init)
    model.eval()
    texts = [(i, frame.format(t=term)) for i, term in enumerate(terms) for frame in FRAMES]
    sums = None
    with torch.no_grad():
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



def held_out_probe(ref: str, world_name: str, *, random_init: bool = False) -> dict[str, float]:
    """The last layer's severity probe of a model (a ref or a saved directory) on the world's held-out terms and
    on its seen terms."""
    world = get_world(world_name)
    v = term_vectors(ref, random_init, [t.name for t in world.terms])[:, -1]
    severe = np.array([t.severe for t in world.terms])
    held = np.array([t.held_out for t in world.terms])
    return {"held_out": round(severity_auroc(v, severe, held), 4), "seen": round(severity_auroc(v, severe, ~held), 4)}


PROBE_FILE = "probe.json"


def write_probe(run_dir, model_ref: str, world_name: str) -> None:
    """A table run's probe.json beside its metrics.json: what the model it trained (or read) knows of the
    held-out terms."""
    import json
    from pathlib import Path

    (Path(run_dir) / PROBE_FILE).write_text(json.dumps(held_out_probe(model_ref, world_name)), encoding="utf-8")


def teacher_probes(teacher_ref: str, world_name: str | None) -> dict[str, dict[str, float]]:
    """The pretrained teacher as hidden-state and attention KD read it, its random-init twin (what the
    knowledge-free row distils) and its wrong-knowledge twin (what the wrong-knowledge row distils)."""
    from dsgkd.data.world import DEFAULT
    from dsgkd.models.tiny import wrong_knowledge_twin

    world = world_name or DEFAULT
    return {"pretrained": held_out_probe(teacher_ref, world),
            "random_init": held_out_probe(teacher_ref, world, random_init=True),
            "wrong_knowledge": held_out_probe(wrong_knowledge_twin(teacher_ref), world)}
