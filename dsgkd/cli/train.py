"""`dsgkd train`: one run, or several seeds of DSG-KD against its KD-off control.

Choices and their help come from the registries (`HIDDEN_LOSSES`, `LAYER_MAPS`, `SELECTORS`,
`THRESHOLD_RULES`), which import no torch, so `dsgkd train --help` answers at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import get_args

from dsgkd.cli.args import parse_seeds
from dsgkd.choices import HIDDEN_LOSSES, LAYER_MAPS, SELECTORS, THRESHOLD_RULES
from dsgkd.config import DistillConfig, RunConfig
from dsgkd.core.terms.base import SOURCES
from dsgkd.core.terms.hidden import VIEWS
from dsgkd.errors import UserError
from dsgkd.paths import check_outputs

PROJECTIONS = list(get_args(DistillConfig.model_fields["projection"].annotation))
# flag → RunConfig field; flags override the --config file
TRAIN_FLAGS = {
    "data": "data.path", "val": "data.val_path", "test": "data.test_path", "text_col": "data.text_col",
    "label_col": "data.label_col", "label_names": "data.label_names", "group_col": "data.group_col", "encoding": "data.encoding",
    "transfer_data": "data.transfer_path", "teacher": "teacher.ref", "student": "student.ref",
    "pooling": "student.pooling",
    "teacher_finetune": "teacher.finetune", "random_teacher": "teacher.random_init",
    "alpha": "distill.alpha", "beta": "distill.beta", "gamma": "distill.gamma",
    "temperature": "distill.temperature", "layer_map": "distill.layer_map", "selector": "distill.selector",
    "hidden_loss": "distill.hidden_loss", "projection": "distill.projection",
    "hidden_teacher": "distill.hidden_teacher", "hidden_view": "distill.hidden_view", "attention_teacher": "distill.attention_teacher", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "max_length": "train.max_length",
    "long_notes": "train.long_notes", "lr_encoder": "train.lr_encoder",
    "lr_head": "train.lr_head", "patience": "train.patience", "seed": "train.seed", "device": "train.device",
    "precision": "train.precision", "grad_accum": "train.grad_accum", "class_weight": "train.class_weight",
    "label_smoothing": "train.label_smoothing", "restart_floor": "train.restart_floor", "restarts": "train.restarts",
    "threshold": "eval.threshold", "n_bootstrap": "eval.n_bootstrap",
}


def add_parser(sub) -> None:
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
    g.add_argument("--label-names", type=lambda v: v.split(","), metavar="NEG,POS",
                   help="names of classes 0 and 1 in the student's config.json, e.g. non-emergency,emergency "
                        "(default: the declared classes, else 0,1)")
    g.add_argument("--group-col", help="patient id column: split so no patient is in two splits")
    g.add_argument("--encoding", help="file encoding (Korean hospital exports are often cp949)")
    g.add_argument("--transfer-data", help="unlabeled notes on which the KD terms are also computed")
    g = p.add_argument_group("models (a preset such as kmbert, xlmr, kmbert-tiny; a hub id; or a local dir)")
    g.add_argument("--teacher")
    g.add_argument("--student")
    g.add_argument("--pooling", choices=["cls", "mean"],
                   help="what the student's head reads: the first token (cls, default) or the masked mean")
    g.add_argument("--teacher-finetune", action="store_const", const=True,
                   help="fine-tune the teacher once on the task (cached); needed for logit KD (--gamma)")
    g.add_argument("--random-teacher", action="store_const", const=True,
                   help="knowledge-free control: a randomly initialised teacher of the same shape")
    g = p.add_argument_group("distillation")
    g.add_argument("--alpha", type=float, help="hidden-state KD weight (paper: 0.6)")
    g.add_argument("--beta", type=float, help="word-level attention KD weight (paper: 0.2)")
    g.add_argument("--gamma", type=float, help="logit KD weight (needs --teacher-finetune)")
    g.add_argument("--temperature", type=float, help="logit KD temperature")
    g.add_argument("--layer-map", metavar="MAP", help=f"{LAYER_MAPS.help_text()}; or explicit pairs 't:s,t:s'")
    g.add_argument("--selector", metavar="SELECTOR", help="which words are distilled: " + SELECTORS.help_text())
    g.add_argument("--hidden-loss", choices=list(HIDDEN_LOSSES), help=HIDDEN_LOSSES.help_text())
    g.add_argument("--projection", choices=PROJECTIONS)
    g.add_argument("--hidden-teacher", choices=SOURCES,
                   help="which teacher hidden-state KD reads: pretrained (default, the paper) or finetuned "
                        "(needs --teacher-finetune)")
    g.add_argument("--attention-teacher", choices=SOURCES, help="which teacher attention KD reads (as above)")
    g.add_argument("--hidden-view", choices=VIEWS,
                   help="raw (default, the paper): every coordinate of the teacher's term vectors; task: only the "
                        "score of a probe fitted on the labelled notes' term vectors (docs/levers.md)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--max-length", type=int)
    g.add_argument("--long-notes", choices=["truncate", "head_tail", "windows"],
                   help="notes longer than --max-length: truncate (default); head_tail (first and last tokens); "
                        "windows (overlapping windows, every term distilled, a note scored by its best window)")
    g.add_argument("--lr-encoder", type=float)
    g.add_argument("--lr-head", type=float)
    g.add_argument("--patience", type=int)
    g.add_argument("--device", help="auto (CUDA when there is one) | cpu | cuda | cuda:N | mps")
    g.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"],
                   help="auto (default): bf16 on a CUDA card that has it, fp16 with a gradient scaler on older "
                        "cards (V100, T4), fp32 on CPU")
    g.add_argument("--grad-accum", type=int, help="batches per optimiser step (effective batch: batch size × this "
                                                  "× workers)")
    g.add_argument("--class-weight", help="the task loss's class weights: none (default), balanced, or the "
                                          "positive class's weight, e.g. 4")
    g.add_argument("--label-smoothing", type=float, help="the task loss's label smoothing, 0 (default) to <1")
    g.add_argument("--restart-floor", type=float, metavar="AUROC",
                   help="redraw a run whose best validation AUROC stays below this (it never left the label prior), "
                        "keeping the best draw on validation; 0 (default) never redraws")
    g.add_argument("--restarts", type=int, help="at most this many redraws (default 2)")
    g.add_argument("--threshold", choices=list(THRESHOLD_RULES),
                   help="rule for the decision threshold on validation: " + THRESHOLD_RULES.help_text())
    g.add_argument("--n-bootstrap", type=int)
    s = g.add_mutually_exclusive_group()
    s.add_argument("--seed", type=int)
    s.add_argument("--seeds", help="comma-separated seeds: runs DSG-KD and the KD-off control per seed")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="with --seeds: train N of the runs at once, each in its own process on its share of the "
                        "cores (default 1)")
    p.add_argument("--out", required=True, help="output directory (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run)


def train_inputs(cfg: RunConfig, config: str | None) -> dict[str, str | None]:
    """Every file or folder a run reads: its config, notes, local model directories and lexicon."""
    d = cfg.data
    selector, _, lexicon = cfg.distill.selector.partition(":")
    local = {f"--{side}": ref for side, ref in (("teacher", cfg.teacher.ref), ("student", cfg.student.ref))
             if ref and Path(ref).exists()}
    return {"--config": config, "--data": d.path, "--val": d.val_path, "--test": d.test_path,
            "--transfer-data": d.transfer_path, **local,
            "--selector": lexicon if selector == "lexicon" and lexicon != "embedded" else None}


def run(args) -> int:
    from dsgkd.pipeline.resolve import resolve_run

    cfg = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    overrides = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()
                 if getattr(args, flag, None) is not None}
    cfg = cfg.with_overrides(overrides, source=args.config or "flags")
    if cfg.data.path is None:
        raise UserError("no training data: pass --data or set data.path in --config")
    check_outputs(train_inputs(cfg, args.config), folders={"--out": args.out})
    run = resolve_run(cfg)  # once; a bad ref, map or length fails here, before torch and transformers load
    from dsgkd.pipeline.train import run_seeds, run_train

    if args.parallel < 1:
        raise UserError(f"--parallel: {args.parallel}; give 1 or more")
    if args.parallel > 1 and not args.seeds:
        raise UserError("--parallel trains the runs of --seeds side by side: pass --seeds too")
    if args.seeds:
        run_seeds(run, args.out, parse_seeds(args.seeds), overwrite=args.overwrite, workers=args.parallel)
    else:
        run_train(run, args.out, overwrite=args.overwrite)
    return 0
