"""`dsgkd synth`: synthetic code-switched notes (and an unlabeled domain corpus)."""
from __future__ import annotations

from dsgkd.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="write synthetic code-switched pediatric-ED notes (and a domain corpus)")
    p.add_argument("--n", type=int, default=4000, help="number of labelled notes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="notes file (.csv, .parquet or .jsonl); columns PT_ID, ER_DHX, LABEL")
    p.add_argument("--corpus", help="also write an unlabeled domain corpus here (.csv with column ER_DHX)")
    p.add_argument("--corpus-n", type=int, default=20000)
    p.set_defaults(func=run)


def run(args) -> int:
    import pandas as pd

    from dsgkd.data.synthetic import generate_domain_corpus, generate_notes, write_table

    if args.n < 10:
        raise UserError(f"--n {args.n}: need at least 10 notes")
    notes = generate_notes(args.n, seed=args.seed)
    write_table(notes, args.out)
    print(f"wrote {len(notes)} notes ({notes['LABEL'].mean():.1%} emergency) to {args.out}")
    if args.corpus:
        corpus = pd.DataFrame({"ER_DHX": generate_domain_corpus(args.corpus_n, seed=args.seed)})
        write_table(corpus, args.corpus)
        print(f"wrote {len(corpus)} unlabeled domain notes to {args.corpus}")
    return 0
