"""`dsgkd lexicon`: mine a term list from the user's notes and a domain corpus, for `--selector lexicon:FILE`."""
from __future__ import annotations

from dsgkd.errors import UserError
from dsgkd.paths import check_outputs


def add_parser(sub) -> None:
    p = sub.add_parser("lexicon", help="mine the domain terms of your notes (no term list needed) for "
                                       "--selector lexicon:FILE",
                       description="Write the words and multi-word terms of NOTES that an unlabelled domain CORPUS "
                                   "names about as often as the notes do or more, that sit in few notes (not vitals' "
                                   "labels, abbreviations, boilerplate) and not in a fixed phrase: the domain terms "
                                   "to distil, in any script (dsgkd.data.lexicon). Give every note text you have, "
                                   "unlabelled ones too: a term the notes never show is not found. Then "
                                   "`dsgkd train --selector lexicon:OUT`.")
    p.add_argument("--notes", required=True, metavar="FILE[,FILE...]",
                   help="notes files (.csv, .tsv, .parquet, .jsonl): training, transfer, validation and test texts")
    p.add_argument("--text-col", required=True, help="the notes' text column")
    p.add_argument("--corpus", required=True, metavar="FILE", help="unlabelled domain text, one sentence or passage "
                   "a row (dsgkd synth --corpus writes one)")
    p.add_argument("--corpus-col", help="the corpus's text column (default: --text-col)")
    p.add_argument("--out", required=True, metavar="FILE", help="the lexicon: one term a line")
    p.add_argument("--explain", metavar="FILE", help="also write every candidate with its evidence (TSV)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dsgkd.data.lexicon import read_texts, score
    from dsgkd.storage import atomic_file

    paths = [p.strip() for p in args.notes.split(",") if p.strip()]
    if not paths:
        raise UserError("--notes: give at least one notes file")
    check_outputs({"--notes": paths, "--corpus": args.corpus}, files={"--out": args.out, "--explain": args.explain})
    notes = [t for path in paths for t in read_texts(path, args.text_col)]
    corpus = read_texts(args.corpus, args.corpus_col or args.text_col)
    candidates = score(notes, corpus)
    kept = [c.unit for c in candidates if c.kept]
    if not kept:
        raise UserError(f"{args.corpus}: no word of the notes is named in this corpus as a domain term; is it "
                        "text of the notes' domain?")
    header = (f"# dsgkd lexicon: {len(kept)} terms mined from {len(notes)} notes ({', '.join(paths)}) and "
              f"{len(corpus)} corpus texts ({args.corpus})\n")
    with atomic_file(args.out) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(header + "".join(f"{u}\n" for u in kept))
    if args.explain:
        with atomic_file(args.explain) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("unit\tkept\tnote_docs\tcorpus_docs\tcontrast\tfixed\n")
                f.writelines(f"{c.unit}\t{int(c.kept)}\t{c.note_docs}\t{c.corpus_docs}\t{c.contrast}\t{c.fixed}\n"
                             for c in candidates)
    print(f"wrote {len(kept)} terms (of {len(candidates)} words and phrases in {len(notes)} notes) to {args.out}; "
          f"use --selector lexicon:{args.out}")
    return 0
