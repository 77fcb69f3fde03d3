"""`dsgkd table`: the paper's comparison on the embedded benchmark."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from dsgkd.cli.args import parse_seeds
from dsgkd.constants import SEARCH_SPACES
from dsgkd.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("table", help="the paper's comparison on the embedded benchmark (docs/results.md)",
                       description="Control, teacher alone, paper settings, searched best and a knowledge-free "
                                   "(random teacher) control for each stand-in pair, over several seeds, with "
                                   "paired bootstrap p-values. Re-running with the same --out resumes.")
    p.add_argument("--out", type=Path, default=Path("runs/paper_table"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--trials", type=int, help="search trials per pair (default: the space's budget)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="runs in parallel")
    p.add_argument("--pairs", help="comma-separated pair names (default: all in the space)")
    p.add_argument("--train", type=int, default=600)
    p.add_argument("--val", type=int, default=400)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--transfer", type=int, default=500)
    p.add_argument("--results", type=Path, help="also write the markdown here (e.g. docs/results.md)")
    p.add_argument("--render-only", action="store_true",
                   help="re-write the markdown from OUT/results.json without running anything")
    p.add_argument("--space", type=Path, default=SEARCH_SPACES / "paper_table.yaml", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def invocation() -> str:
    """The command line as typed: `dsgkd table ...` or `python benchmarks/paper_table.py ...`."""
    head = ["dsgkd"] if Path(sys.argv[0]).name == "dsgkd" else ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


def run(args) -> int:
    from dsgkd.experiments.paper_table import run_table, write_report

    if args.render_only:
        if not (args.out / "results.json").is_file():
            raise UserError(f"{args.out}: no results.json to render (run the table first)")
        print(write_report(args.out, args.results))
        return 0
    seeds = parse_seeds(args.seeds)
    if len(seeds) < 2:
        raise UserError("--seeds: the table needs at least two seeds for a std")
    sizes = {"train": args.train, "val": args.val, "test": args.test, "transfer": args.transfer}
    for name, n in sizes.items():
        if n < 50:
            raise UserError(f"--{name} {n}: needs at least 50 notes")
    pairs = [s.strip() for s in args.pairs.split(",")] if args.pairs else None
    run_table(args.out, seeds=seeds, trials=args.trials, workers=args.workers, sizes=sizes, pairs=pairs,
              results_path=args.results, space_path=args.space,
              command=invocation())
    return 0
