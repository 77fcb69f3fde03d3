"""`dsgkd evaluate`: a trained student's metrics, with bootstrap CIs, on a labelled file, at its own threshold and
temperature; with --plots, its ROC, precision-recall and reliability diagrams."""
from __future__ import annotations

import os

from dsgkd.errors import UserError
from dsgkd.paths import check_outputs
from dsgkd.storage import recover


def add_model_args(p) -> None:
    """The flags `evaluate` and `predict` share: which student, which file, how to read and score it."""
    p.add_argument("--model", "--checkpoint", dest="model", required=True, metavar="DIR",
                   help="a student directory written by `dsgkd train` (OUT/student), or that run's OUT")
    p.add_argument("--data", required=True, metavar="FILE", help="notes: CSV / TSV / Parquet / JSONL")
    p.add_argument("--text-col", help="text column (default: the one the student was trained on)")
    p.add_argument("--encoding", help="file encoding (default: the training data's, e.g. cp949)")
    p.add_argument("--batch-size", type=int, help="notes per forward pass (default: the training batch size)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto; CUDA scores in bf16)")


def model_inputs(args) -> dict[str, str]:
    """What `evaluate` and `predict` read; a student left missing by a writer killed mid-replace is restored
    first (`dsgkd.storage.recover`)."""
    recover(args.model)
    return {"--model": args.model, "--data": args.data}


def check_batch_size(args) -> None:
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics with bootstrap CIs of a trained student on a labelled file",
                       description="Score a labelled file with a student written by `dsgkd train` and report "
                                   "AUROC, AUPRC, F1, precision, recall, specificity, accuracy, Brier and ECE "
                                   "with percentile bootstrap CIs, at the decision threshold stored with the "
                                   "model (chosen on validation when it was trained). The file is read and "
                                   "checked as `dsgkd train` reads its files; rows with empty text are dropped.")
    add_model_args(p)
    p.add_argument("--label-col", help="label column (default: the one the student was trained on)")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap draws (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics, the threshold and temperature used here "
                   "and the curve points (ROC, precision-recall, reliability)")
    p.add_argument("--plots", metavar="DIR", help="also draw roc.png, pr.png and reliability.png into DIR, with the "
                   "operating point at the stored threshold marked")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys
    import warnings

    from dsgkd.report.eval_plots import PLOTS, check_plots_dir

    check_batch_size(args)
    if args.n_bootstrap < 1:
        raise UserError(f"--n-bootstrap {args.n_bootstrap}: must be at least 1")
    if args.plots:
        check_plots_dir(args.plots)
    plots = [os.path.join(args.plots, f"{name}.png") for name in PLOTS] if args.plots else None
    check_outputs(model_inputs(args), files={"--json": args.json, "--plots": plots})

    from dsgkd.core.metrics import METRICS
    from dsgkd.pipeline.serve import evaluate_file, load_student
    from dsgkd.report.eval_plots import write_eval_plots
    from dsgkd.storage import atomic_write_text

    student = load_student(args.model, args.device)
    meta = student.meta
    with warnings.catch_warnings(record=True) as caught:  # rows dropped for empty text: one line each
        warnings.simplefilter("always", UserWarning)
        result = evaluate_file(student, args.data, text_col=args.text_col or meta["text_col"],
                               label_col=args.label_col or meta["label_col"],
                               encoding=args.encoding or meta["encoding"], n_boot=args.n_bootstrap, seed=args.seed,
                               batch_size=args.batch_size)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"{result['n']} notes ({result['n_positive']} positive), temperature {result['temperature']:.6g}, threshold "
          f"{result['threshold']:.6g} ({result['threshold_rule']} on validation); 95% bootstrap CI over "
          f"{args.n_bootstrap} draws")
    for m in METRICS:
        v = result["metrics"][m]
        print(f"{m:<12} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plots:
        print("wrote " + ", ".join(str(p) for p in write_eval_plots(result, args.plots)))
    return 0
