"""`dsgkd synth`: synthetic code-switched notes of a world (and an unlabeled domain corpus)."""
from __future__ import annotations

import os

from dsgkd.errors import UserError
from dsgkd.paths import check_outputs


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="write synthetic code-switched pediatric-ED notes (and a domain corpus)",
                       description="Notes of a synthetic world (dsgkd.data.world: term lexicon, severities, "
                                   "phrasings, prevalence and noise drawn from its name; same world and seed, "
                                   "same files). --benchmark DIR writes the benchmark's train/val/test/transfer "
                                   "files, the training file without the world's held-out terms. --profile "
                                   "draws a control world (dsgkd.data.profiles): positive (term severity carries "
                                   "the label, half the terms held out), negative (the domain corpus states "
                                   "permuted severities; the notes are the default profile's).")
    p.add_argument("--world", default="default", help="world name (default: the README's world); `W:P` names a "
                                                      "profile too")
    p.add_argument("--profile", help="default, positive, negative or negative2 (default: the world name's, else default)")
    p.add_argument("--n", type=int, default=4000, help="number of labelled notes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--history", type=int, default=0, metavar="N",
                   help="N neutral history/exam sentences between the complaint and the findings: long notes whose "
                        "decisive term sits late (default 0: the world's notes as they are)")
    p.add_argument("--out", help="notes file (.csv, .parquet or .jsonl); columns PT_ID, ER_DHX, LABEL, HELD_OUT_TERM")
    p.add_argument("--training", action="store_true",
                   help="a labelled training file: no note carries one of the world's held-out terms")
    p.add_argument("--benchmark", metavar="DIR", help="write DIR/{train,val,test,transfer}.csv instead")
    p.add_argument("--sizes", help="with --benchmark: notes per file (default: the profile's suggested sizes, "
                                   "train=2000,val=400,test=1000,transfer=2000 for the default profile; "
                                   "transfer=10000 for positive)")
    p.add_argument("--corpus", help="also write an unlabeled domain corpus here (.csv with column ER_DHX)")
    p.add_argument("--corpus-n", type=int, default=20000)
    p.set_defaults(func=run)


def parse_sizes(text: str) -> dict[str, int]:
    from dsgkd.data.benchmark import SPLITS

    sizes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        split, _, n = part.partition("=")
        if split not in SPLITS or not n.isdigit() or int(n) < 10:
            raise UserError(f"--sizes {part!r}: expected SPLIT=N with SPLIT in {', '.join(SPLITS)} and N >= 10")
        sizes[split] = int(n)
    return sizes


def run(args) -> int:
    import pandas as pd

    from dsgkd.data.benchmark import SPLITS, write_benchmark
    from dsgkd.data.synthetic import generate_domain_corpus, generate_notes, write_table
    from dsgkd.data.world import get_world

    world = get_world(args.world, args.profile)  # a bad name is one line before anything is written
    if (args.out is None) == (args.benchmark is None):
        raise UserError("synth: give --out FILE or --benchmark DIR")
    benchmark = [os.path.join(args.benchmark, f"{split}.csv") for split in SPLITS] if args.benchmark else None
    check_outputs({}, files={"--out": args.out, "--benchmark": benchmark, "--corpus": args.corpus})
    if args.benchmark:
        sizes = parse_sizes(args.sizes) if args.sizes else world.profile.suggested_sizes
        for split, path in write_benchmark(args.benchmark, sizes, world=world.name).items():
            print(f"wrote {split}: {path}")
    else:
        if args.n < 10:
            raise UserError(f"--n {args.n}: need at least 10 notes")
        notes = generate_notes(args.n, seed=args.seed, world=world.name, include_held_out=not args.training,
                               history=args.history)
        write_table(notes, args.out)
        print(f"wrote {len(notes)} notes of world {world.name} ({notes['LABEL'].mean():.1%} emergency, "
              f"{notes['HELD_OUT_TERM'].mean():.1%} with a held-out term) to {args.out}")
    if args.corpus:
        corpus = pd.DataFrame({"ER_DHX": generate_domain_corpus(args.corpus_n, seed=args.seed, world=world.name)})
        write_table(corpus, args.corpus)
        print(f"wrote {len(corpus)} unlabeled domain sentences to {args.corpus}")
    return 0
