"""`dsgkd search`: Ray Tune + Optuna + ASHA over a search-space YAML (Ray is imported only when it runs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from dsgkd.cli.args import parse_sets
from dsgkd.paths import check_outputs

RESUME_HELP = ("continue the search in RUN (Tuner.restore): finished trials are kept; in-flight and errored "
               "trials resume from their last epoch checkpoint. Ray does not restore ASHA's rungs (ray #30838); "
               "dsgkd rebuilds them from the results the trials had recorded, so a result that was not yet "
               "written when the search stopped is missing from the early-stopping cut-offs. With budget.reselect, the "
               "re-runs RUN/reselect.json does not hold yet are run; a search whose trials all finished goes straight "
               "to them. It unpickles Ray's state in RUN, which runs code: a run folder is trusted like code, so "
               "resume only runs you made (one owned by another user is refused)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "search", help="Ray Tune + Optuna + ASHA search over a search-space YAML",
        description="Search DSG-KD settings with Ray Tune (OptunaSearch, ASHA); every trial is a Ray Train "
                    "DDP run. Writes RUN/space.yaml, RUN/optuna.db and RUN/study.json (the study's name: RUN's "
                    "name and a random suffix), RUN/tune/, "
                    "RUN/train/ and RUN/teacher_cache/; with budget.reselect, RUN/reselect.json (the best trials "
                    "re-run on fresh seeds). Finished trials outside the best budget.keep_checkpoints drop their "
                    "checkpoints. With --mlflow-uri, RUN/mlflow.json. A second search into the same RUN is refused "
                    "while the first runs (RUN/.dsgkd.lock).")
    p.add_argument("--space", type=Path, metavar="FILE",
                   help="search-space YAML (see search_spaces/); with --resume defaults to RUN/space.yaml")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="run directory")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.add_argument("--address", help="Ray cluster to join ('auto' = the one running here; default: "
                                     "$RAY_ADDRESS, else start a local instance)")
    p.add_argument("--num-samples", type=int, metavar="N", help="trials to run (overrides budget.num_samples)")
    p.add_argument("--no-teacher-cache", action="store_true",
                   help="run the frozen teacher live in every trial instead of the shared RUN/teacher_cache")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a fixed setting of the space's base, e.g. --set data.path=notes.csv")
    p.add_argument("--optuna-storage", metavar="URL",
                   help="Optuna RDB URL (default: sqlite:///RUN/optuna.db), e.g. postgresql://user@host/db on a "
                        "cluster: no password in it; it is read from $DSGKD_STORAGE_PASSWORD or "
                        "--storage-password-file and never written down")
    p.add_argument("--storage-password-file", type=Path, metavar="FILE",
                   help="file whose first line is the --optuna-storage password (instead of $DSGKD_STORAGE_PASSWORD)")
    p.add_argument("--mlflow-uri", metavar="URI",
                   help="also log every trial to MLflow (one run per trial: its searched settings as params, "
                        "per-epoch metrics), e.g. sqlite:///mlflow.db or http://host:5000 (no password in it: "
                        "$DSGKD_MLFLOW_PASSWORD, or MLflow's own MLFLOW_TRACKING_PASSWORD for a server); needs "
                        "pip install 'dsgkd[mlflow]'. Stored in the run: --resume logs there again unasked. "
                        "TensorBoard event files are always written: tensorboard --logdir RUN/tune")
    p.add_argument("--mlflow-experiment", metavar="NAME", help="MLflow experiment (default: the name of RUN)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="trials listed at the end")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the search and print the top trials. 1 when no trial finished cleanly."""
    overrides = parse_sets(args.set)
    if not args.resume:  # the space is copied into RUN/space.yaml: never over the user's own file
        check_outputs({"--space": args.space}, files={"--out": [args.out / "space.yaml", args.out / "optuna.db"]})
    from dsgkd.search import reselect
    from dsgkd.search.credentials import STORAGE_PASSWORD_ENV, load_password_file
    from dsgkd.search.space import load_space
    from dsgkd.search.trial_records import read_reselect
    from dsgkd.search.tune import search, top_trials

    if args.storage_password_file is not None:
        load_password_file(args.storage_password_file, STORAGE_PASSWORD_ENV)
    grid = search(args.space, args.out, resume=args.resume, address=args.address,
                  num_samples=args.num_samples, teacher_cache=not args.no_teacher_cache,
                  storage=args.optuna_storage, overrides=overrides, mlflow_uri=args.mlflow_uri,
                  mlflow_experiment=args.mlflow_experiment)
    print(top_trials(grid, load_space(Path(args.out) / "space.yaml"), args.top))
    state = read_reselect(args.out)
    if state:
        print(reselect.summary(state))
    return 0 if any(r.error is None for r in grid) else 1
