"""How well does a selector pick out a world's domain terms? `latin`, `all` and a lexicon mined without an oracle.

The benchmark's files of one world are written (`write_benchmark`: train without held-out terms, transfer,
test) with a domain corpus (`generate_domain_corpus`); a lexicon is mined from the train and transfer notes and
the corpus alone (`dsgkd.data.lexicon`, what `dsgkd lexicon` runs). The world's term list is read only to score:

- precision: the share of selected words (selector matches) in the transfer notes that are a term occurrence,
  exactly (`precision`) or at least overlapping one (`precision_overlap`: "Kawasaki" of "Kawasaki disease");
- held-out recall: the share of held-out-term occurrences in the transfer and test notes selected exactly
  (`held_out_recall`) or covered word for word by selected words (`held_out_recall_covered`);
- words per transfer note (no `max_terms` cap: the selector's own count).

`--script cyrillic` first rewrites every term in notes and corpus as uppercase Cyrillic (Latin lookalikes where
there are any), so the terms share no script with the English abbreviations around them: the mined lexicon must
hold its precision and recall, `latin` loses its terms.

    python benchmarks/selector_quality.py [--world default] [--sizes train=2000,test=1000,transfer=2000]
                                          [--corpus-n 20000] [--script latin|cyrillic] [--out DIR]
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from dsgkd.core.align import find_terms
from dsgkd.data.benchmark import write_benchmark
from dsgkd.data.lexicon import mine_lexicon, words
from dsgkd.data.synthetic import generate_domain_corpus
from dsgkd.data.world import get_world

CYRILLIC = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "АБСДЕФГНІЈКЛМИОПԚЯЅТЦѴШХУЗ"))


def cyrillic(term: str) -> str:
    """Uppercase Cyrillic, one letter for each Latin one (so distinct terms stay distinct)."""
    return "".join(CYRILLIC.get(c, c) for c in term.upper())


def term_occurrences(text: str, terms: dict[tuple[str, ...], str]) -> list[tuple[int, int, str]]:
    """(start, end, term) of every term occurrence: consecutive words, whitespace between, longest first."""
    ws, out, i = words(text), [], 0
    longest = max(map(len, terms))
    while i < len(ws):
        for n in range(min(longest, len(ws) - i), 0, -1):
            seq = ws[i:i + n]
            key = tuple(w for _, _, w in seq)
            if key in terms and all(text[a[1]:b[0]].isspace() for a, b in zip(seq, seq[1:])):
                out.append((seq[0][0], seq[-1][1], terms[key]))
                i += n
                break
        else:
            i += 1
    return out


def rewrite_terms(texts: list[str], names: list[str], mapping) -> list[str]:
    """Every case-insensitive occurrence of a term replaced by mapping(term)."""
    terms = {tuple(w.casefold() for _, _, w in words(t)): t for t in names}
    out = []
    for text in texts:
        folded = text.casefold()  # same length as text for these scripts; checked below
        assert len(folded) == len(text)
        pieces, pos = [], 0
        for a, b, term in term_occurrences(folded, terms):
            pieces += [text[pos:a], mapping(term)]
            pos = b
        out.append("".join(pieces) + text[pos:])
    return out


def selector_scores(selector: str, transfer: list[str], test: list[str], terms: dict, held: set[str]) -> dict:
    hits = hits_overlap = selected = 0
    for text in transfer:
        gold = term_occurrences(text, terms)
        exact = {(a, b) for a, b, _ in gold}
        for a, b in find_terms(text, selector, max_terms=10**9):
            selected += 1
            hits += (a, b) in exact
            hits_overlap += any(a < gb and b > ga for ga, gb in exact)
    held_total = held_exact = held_covered = 0
    for text in transfer + test:
        spans = find_terms(text, selector, max_terms=10**9)
        chosen = set(spans)
        for a, b, term in term_occurrences(text, terms):
            if term in held:
                held_total += 1
                held_exact += (a, b) in chosen
                held_covered += _covered(text, a, b, spans)
    return {"precision": round(hits / max(selected, 1), 3),
            "precision_overlap": round(hits_overlap / max(selected, 1), 3),
            "held_out_recall": round(held_exact / max(held_total, 1), 3),
            "held_out_recall_covered": round(held_covered / max(held_total, 1), 3),
            "words_per_note": round(selected / len(transfer), 2), "held_out_occurrences": held_total}


def _covered(text: str, a: int, b: int, spans) -> bool:
    """Every word of text[a:b] lies inside some selected span."""
    return all(any(s <= a + wa and a + we <= e for s, e in spans) for wa, we, _ in words(text[a:b]))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", default="default")
    ap.add_argument("--sizes", default="train=2000,test=1000,transfer=2000")
    ap.add_argument("--corpus-n", type=int, default=20000)
    ap.add_argument("--script", choices=("latin", "cyrillic"), default="latin")
    ap.add_argument("--out", help="folder for the benchmark files and the mined lexicon (default: a temporary one)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sizes = {k: int(v) for k, v in (p.split("=") for p in args.sizes.split(","))}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        paths = write_benchmark(folder / "benchmark", sizes, world=args.world)
        notes = {split: pd.read_csv(path)["ER_DHX"].astype(str).tolist() for split, path in paths.items()}
        corpus = generate_domain_corpus(args.corpus_n, seed=0, world=args.world)
        world = get_world(args.world)
        names = [t.name for t in world.terms]
        rename = cyrillic if args.script == "cyrillic" else (lambda t: t)
        if args.script == "cyrillic":
            notes = {k: rewrite_terms(v, names, cyrillic) for k, v in notes.items()}
            corpus = rewrite_terms(corpus, names, cyrillic)
        terms = {tuple(w for _, _, w in words(rename(t))): rename(t) for t in names}
        held = {rename(t.name) for t in world.terms if t.held_out}
        mined = mine_lexicon(notes.get("train", []) + notes["transfer"], corpus)
        lexicon = folder / "mined_terms.txt"
        lexicon.write_text("\n".join(mined) + "\n", encoding="utf-8")
        transfer, test = notes["transfer"], notes.get("test", [])
        result = {
            "world": args.world, "script": args.script, "sizes": sizes, "corpus_sentences": len(corpus),
            "mined_from": "train + transfer notes and the domain corpus (no term list)",
            "mined_terms": len(mined), "mined_terms_in_world": len(set(mined) & set(terms.values())),
            "world_terms": len(names),
            "selectors": {name: selector_scores(sel, transfer, test, terms, held) for name, sel in
                          (("latin", "latin"), ("all", "all"), ("mined", f"lexicon:{lexicon}"))},
            "targets": {"precision": 0.70, "held_out_recall": 0.90}, "wall_s": None}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
