"""`dsgkd demo`: the embedded default, end to end."""
from __future__ import annotations

import argparse
from pathlib import Path

from dsgkd.cli.args import parse_seeds
from dsgkd.constants import SEARCH_SPACES
from dsgkd.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the embedded default: synthetic data, stand-ins, search, analysis, re-run",
                       description="Run the whole product offline: synthetic notes, stand-in models (cached under "
                                   "$DSGKD_CACHE or ~/.cache/dsgkd), a search over search_spaces/demo.yaml, "
                                   "analysis, export, and a multi-seed re-run of the best config vs the KD-off "
                                   "control. Writes DEMO/report.md.")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="demo directory (new or empty)")
    p.add_argument("--notes", type=int, default=1200, help="synthetic labelled notes")
    p.add_argument("--trials", type=int, help="search trials (default: the space's budget)")
    p.add_argument("--epochs", type=int, help="epochs per trial and re-run (default: the space's)")
    p.add_argument("--seeds", default="0,1", help="seeds of the final re-run (default 0,1: each more seed costs "
                                                  "a teacher fine-tune and two runs, ~25 s on 2 cores)")
    p.add_argument("--space", type=Path, default=SEARCH_SPACES / "demo.yaml", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    from dsgkd.experiments.demo import run_demo

    seeds = parse_seeds(args.seeds)
    if args.notes < 100:
        raise UserError(f"--notes {args.notes}: the demo needs at least 100 notes")
    run_demo(args.out, notes=args.notes, trials=args.trials, epochs=args.epochs, seeds=seeds, space_path=args.space)
    return 0
