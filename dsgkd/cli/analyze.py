"""`dsgkd analyze`: leaderboard, per-pair table, importance and plots of a search."""
from __future__ import annotations

import argparse
from pathlib import Path

from dsgkd.constants import IMPORTANCE_EVALUATORS
from dsgkd.paths import check_outputs, run_entries


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "analyze", help="leaderboard, per-pair table, importance and plots of a search",
        description="Read RUN/tune (Ray Tune) and RUN/optuna.db and write RUN/analysis/: leaderboard.csv/.md, "
                    "pairs.md, importance.csv, summary.md and plots/*.png + *.html (offline: plotly.min.js beside "
                    "them); with a space's second_objective also pareto.md/.csv and plots/pareto. Works on finished, "
                    "running and partly errored searches. Each trial is scored at its best epoch, not its last "
                    "report.")
    p.add_argument("run", type=Path, metavar="RUN", help="the --out directory of `dsgkd search`")
    p.add_argument("--optuna-storage", metavar="URL", help="Optuna RDB URL if the search used one "
                                                           "(default: sqlite:///RUN/optuna.db)")
    p.add_argument("--evaluator", choices=sorted(IMPORTANCE_EVALUATORS), default="fanova",
                   help="Optuna importance evaluator (default: fanova)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="trials in the summary and the learning curves")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    storage = args.optuna_storage or ""
    sqlite_file = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else None
    check_outputs({"RUN": run_entries(args.run, except_="analysis"), "--optuna-storage": sqlite_file},
                  folders={"RUN/analysis": args.run / "analysis"})
    from dsgkd.report.analysis import analyze

    print(analyze(args.run, storage=args.optuna_storage, evaluator=args.evaluator, top=args.top,
                  plots=not args.no_plots), end="")
    return 0
