"""`dsgkd analyze`: leaderboard, per-pair table, importance and plots of a search."""
from __future__ import annotations

import argparse
from pathlib import Path

from dsgkd.constants import IMPORTANCE_EVALUATORS
from dsgkd.paths import check_outputs, run_entries


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "analyze", help="leaderboard, per-pair table, importance and plots of a search",
        description="Read RUN/tune (Ray Tune's JSON and CSV: nothing in RUN is unpickled) and the Optuna study "
                    "and write RUN/analysis/: leaderboard.csv/.md, "
                    "pairs.md, importance.csv, summary.md and plots/*.png + *.html (offline: plotly.min.js beside "
                    "them); with a space's second_objective also pareto.md/.csv and plots/pareto. Works on finished, "
                    "running and partly errored searches. Each trial is scored at its best epoch, not its last "
                    "report.")
    p.add_argument("run", type=Path, metavar="RUN", help="the --out directory of `dsgkd search`")
    p.add_argument("--optuna-storage", metavar="URL",
                   help="Optuna RDB URL, without its password (default: the one RUN/study.json records, else "
                        "sqlite:///RUN/optuna.db); the password is read from $DSGKD_STORAGE_PASSWORD or "
                        "--storage-password-file, and only for a URL given here")
    p.add_argument("--storage-password-file", type=Path, metavar="FILE",
                   help="file whose first line is the --optuna-storage password")
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
    from dsgkd.search.credentials import STORAGE_PASSWORD_ENV, load_password_file, refuse_inline_password

    if args.optuna_storage is not None:
        refuse_inline_password(args.optuna_storage, "--optuna-storage", STORAGE_PASSWORD_ENV)
    if args.storage_password_file is not None:
        load_password_file(args.storage_password_file, STORAGE_PASSWORD_ENV)
    print(analyze(args.run, storage=args.optuna_storage, evaluator=args.evaluator, top=args.top,
                  plots=not args.no_plots), end="")
    return 0
