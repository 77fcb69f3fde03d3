"""The table's oracle-free term selector: a lexicon mined from the table's own notes and a domain corpus.

A hospital has its notes and perhaps an unlabelled domain corpus, never the generator's term list
(`lexicon:embedded` is an oracle and stays out of the table). So the table mines its terms the way a user would
(`dsgkd lexicon`, `dsgkd.data.lexicon`): from the training, transfer and validation notes (never the reported
test split) and a domain corpus drawn from the world's generator under its own seed, and offers the result to
both searches as one more `distill.selector` choice, the searched and the knowledge-free arm alike.
"""
from __future__ import annotations

from pathlib import Path

from dsgkd.search.dists import CategoricalDist
from dsgkd.search.space import SearchSpace
from dsgkd.storage import atomic_write_text

CORPUS_SENTENCES = 8000
CORPUS_SEED = 7  # not the stand-in teachers' pretraining draw: the user's corpus is their own sample


def mine_table_lexicon(data: dict[str, str], world: str | None, out: Path) -> Path:
    """OUT/lexicon.txt, mined once (kept when present, so a resumed table reads the same list)."""
    from dsgkd.data.lexicon import mine_lexicon, read_texts
    from dsgkd.data.synthetic import generate_domain_corpus
    from dsgkd.data.world import DEFAULT

    path = out / "lexicon.txt"
    if not path.is_file():
        notes = [t for split in ("train", "transfer", "val") for t in read_texts(data[split], "ER_DHX")]
        corpus = generate_domain_corpus(CORPUS_SENTENCES, seed=CORPUS_SEED, world=world or DEFAULT)
        terms = mine_lexicon(notes, corpus)
        atomic_write_text(path, f"# mined by dsgkd table from {len(notes)} train/transfer/val notes and "
                                f"{len(corpus)} domain-corpus sentences; no term list read\n" + "\n".join(terms) + "\n")
    return path.resolve()


def with_mined_selector(space: SearchSpace, lexicon: Path) -> SearchSpace:
    """`space` with `lexicon:<file>` among the searched selectors (or as the selector, where none is searched)."""
    spelling = f"lexicon:{lexicon}"
    declared = space.params.get("distill.selector")
    if declared is None:
        return space.model_copy(update={"base": space.base.with_overrides({"distill.selector": spelling})})
    choices = [c for c in declared.values() if c != spelling] + [spelling]
    params = {**space.params, "distill.selector": CategoricalDist(type="categorical", choices=choices)}
    return space.model_copy(update={"params": params})
