"""The `dsgkd` command. Bad input exits 2 with one line naming the file, field or row."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from dsgkd.errors import UserError

# flag → RunConfig field; flags override the --config file
TRAIN_FLAGS = {
    "data": "data.path", "val": "data.val_path", "test": "data.test_path", "text_col": "data.text_col",
    "label_col": "data.label_col", "group_col": "data.group_col", "encoding": "data.encoding",
    "transfer_data": "data.transfer_path", "teacher": "teacher.ref", "student": "student.ref",
    "teacher_finetune": "teacher.finetune", "random_teacher": "teacher.random_init",
    "alpha": "distill.alpha", "beta": "distill.beta", "gamma": "distill.gamma",
    "temperature": "distill.temperature", "layer_map": "distill.layer_map", "selector": "distill.selector",
    "hidden_loss": "distill.hidden_loss", "projection": "distill.projection", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "max_length": "train.max_length", "lr_encoder": "train.lr_encoder",
    "lr_head": "train.lr_head", "patience": "train.patience", "seed": "train.seed", "device": "train.device",
    "threshold": "eval.threshold", "n_bootstrap": "eval.n_bootstrap",
}


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="distil a teacher into a student (one seed, or several vs the KD-off control)",
                       description="Fine-tune the student on the task while distilling the frozen teacher on "
                                   "code-switched terms. Writes OUT/config.yaml, OUT/metrics.json, "
                                   "OUT/predictions.csv and OUT/student/ (a Hugging Face checkpoint).")
    p.add_argument("--config", help="RunConfig YAML (e.g. from `dsgkd export`); flags override it")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="labelled notes: CSV / TSV / Parquet / JSONL / datasets dir")
    g.add_argument("--val", help="separate validation file (default: a stratified split of --data)")
    g.add_argument("--test", help="separate test file (default: a stratified split of --data)")
    g.add_argument("--text-col", help="text column (e.g. ER_DHX)")
    g.add_argument("--label-col", help="label column with 0/1 values (e.g. LABEL)")
    g.add_argument("--group-col", help="patient id column: split so no patient is in two splits")
    g.add_argument("--encoding", help="file encoding (Korean hospital exports are often cp949)")
    g.add_argument("--transfer-data", help="unlabeled notes on which the KD terms are also computed")
    g = p.add_argument_group("models (a preset such as kmbert, xlmr, kmbert-tiny; a hub id; or a local dir)")
    g.add_argument("--teacher")
    g.add_argument("--student")
    g.add_argument("--teacher-finetune", action="store_const", const=True,
                   help="fine-tune the teacher once on the task (cached); needed for logit KD (--gamma)")
    g.add_argument("--random-teacher", action="store_const", const=True,
                   help="knowledge-free control: a randomly initialised teacher of the same shape")
    g = p.add_argument_group("distillation")
    g.add_argument("--alpha", type=float, help="hidden-state KD weight (paper: 0.6)")
    g.add_argument("--beta", type=float, help="word-level attention KD weight (paper: 0.2)")
    g.add_argument("--gamma", type=float, help="logit KD weight (needs --teacher-finetune)")
    g.add_argument("--temperature", type=float, help="logit KD temperature")
    g.add_argument("--layer-map", help="all | uniform | skip | last_k:K | first_last | 't:s,t:s'")
    g.add_argument("--selector", help="which words are distilled: latin | all | lexicon:<file> | lexicon:embedded")
    g.add_argument("--hidden-loss", choices=["mse", "cosine", "relational"])
    g.add_argument("--projection", choices=["auto", "linear"])
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--max-length", type=int)
    g.add_argument("--lr-encoder", type=float)
    g.add_argument("--lr-head", type=float)
    g.add_argument("--patience", type=int)
    g.add_argument("--device", help="auto | cpu | cuda")
    g.add_argument("--threshold", choices=["f1", "prevalence"], help="rule for the decision threshold on validation")
    g.add_argument("--n-bootstrap", type=int)
    s = g.add_mutually_exclusive_group()
    s.add_argument("--seed", type=int)
    s.add_argument("--seeds", help="comma-separated seeds: runs DSG-KD and the KD-off control per seed")
    p.add_argument("--out", required=True, help="output directory (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from dsgkd.config import RunConfig
    from dsgkd.runner import run_seeds, run_train

    cfg = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    overrides = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()
                 if getattr(args, flag, None) is not None}
    cfg = cfg.with_overrides(overrides, source=args.config or "flags")
    if cfg.data.path is None:
        raise UserError("no training data: pass --data or set data.path in --config")
    if args.seeds:
        try:
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers like 0,1,2") from None
        run_seeds(cfg, args.out, seeds, overwrite=args.overwrite)
    else:
        run_train(cfg, args.out, overwrite=args.overwrite)
    return 0


def add_synth_parser(sub) -> None:
    p = sub.add_parser("synth", help="write synthetic code-switched pediatric-ED notes (and a domain corpus)")
    p.add_argument("--n", type=int, default=4000, help="number of labelled notes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="notes file (.csv, .parquet or .jsonl); columns PT_ID, ER_DHX, LABEL")
    p.add_argument("--corpus", help="also write an unlabeled domain corpus here (.csv with column ER_DHX)")
    p.add_argument("--corpus-n", type=int, default=20000)
    p.set_defaults(func=cmd_synth)


def cmd_synth(args) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsgkd", description="DSG-KD: distil a domain teacher into a general "
                                     "multilingual student on code-switched clinical notes, and search its settings.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_synth_parser(sub)
    add_train_parser(sub)
    for module, adder in (("dsgkd.search", "add_search_parser"), ("dsgkd.analysis", "add_analyze_parser"),
                          ("dsgkd.export", "add_export_parser"), ("dsgkd.demo", "add_demo_parser"),
                          ("dsgkd.paper_table", "add_table_parser")):
        getattr(importlib.import_module(module), adder)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()  # load reports about fresh classifier heads are expected here
    transformers.logging.disable_progress_bar()
    try:
        return args.func(args)
    except UserError as e:
        print(f"dsgkd {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dsgkd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
