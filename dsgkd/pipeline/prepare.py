"""Everything a run needs before its first step, loaded and checked before anything is written.

`prepare` takes a run resolved at the edge (`dsgkd.pipeline.resolve`: layer map and `max_length` checked
against both models) and loads the notes, both tokenizers and models, so a bad file or column is a one-line
`UserError` raised before `dsgkd train` creates its output directory or a search starts Ray. It trains
nothing: a teacher that must be fine-tuned first is made by `dsgkd.pipeline.teachers` and handed in as
`teacher_dir`. Which outputs each model must return comes from the enabled KD terms.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

from dsgkd.config import RunConfig
from dsgkd.core.engine import Prepared
from dsgkd.core.encoded_notes import EncodedNotes
from dsgkd.core.terms import enabled, needs_output
from dsgkd.data.emr import Splits, load_splits, load_unlabeled
from dsgkd.models.load import load_classifier, load_config, load_tokenizer
from dsgkd.models.pooling import set_pooling
from dsgkd.pipeline.note_store import encode_run_notes
from dsgkd.pipeline.resolve import ResolvedRun

FEW_TERMS = 0.10  # share of KD notes with a term below which the user is told the KD terms are near zero


def load_transfer(cfg: RunConfig) -> list[str]:
    d = cfg.data
    if not d.transfer_path:
        return []
    return load_unlabeled(d.transfer_path, d.transfer_text_col or d.text_col, d.encoding, d.max_transfer)


def load_teacher(cfg: RunConfig, *, attention: bool, teacher_dir: str | Path | None = None):
    """A frozen teacher: the fine-tuned copy in `teacher_dir`, else the teacher as configured, pretrained or
    randomly initialised (the knowledge-free control)."""
    if teacher_dir is not None:
        return load_classifier(str(teacher_dir), output_attentions=attention)
    if cfg.teacher.random_init:
        torch.manual_seed(cfg.train.seed)
        return load_classifier(cfg.teacher.ref, random_init=True, output_attentions=attention)
    return load_classifier(cfg.teacher.ref, output_attentions=attention)


def fresh_student(cfg: RunConfig, terms) -> tuple:
    """The student's tokenizer and model as `cfg.train.seed` draws it: its fresh classifier head (and, for a
    random-init student, every weight) comes from that seed."""
    torch.manual_seed(cfg.train.seed)
    tok, student = load_classifier(cfg.student.ref, random_init=cfg.student.random_init,
                                   output_attentions=needs_output(terms, "student", "attentions"))
    return tok, set_pooling(student, cfg.student.pooling)


def prepare(run: ResolvedRun, *, splits: Splits | None = None, teacher_weights: bool = True,
            teacher_dir: str | Path | None = None, note_store: Path | None = None) -> Prepared:
    """Load data and models and encode the notes for both tokenizers once.

    `teacher_weights=False` is for runs that read the teacher signal from a cache: only the teacher's
    tokenizer and config are loaded, not a frozen copy of its weights in every trial. Each teacher the enabled
    terms read is loaded (`teacher_dir`: the fine-tuned copy, needed when a term reads it). `note_store`: a
    search's RUN/note_store, where the encoded notes are memory-mapped from (`dsgkd.pipeline.note_store`).
    """
    cfg = run.cfg
    splits = splits or load_splits(cfg.data)
    transfer = load_transfer(cfg)
    terms = enabled(cfg.distill, list(run.layer_pairs))
    s_tok, student = fresh_student(cfg, terms)
    p = Prepared(cfg, splits, transfer, s_tok, student, layer_pairs=list(run.layer_pairs))
    if cfg.distill.kd_on:
        p.teacher_tok, p.teacher_config = load_tokenizer(cfg.teacher.ref), load_config(cfg.teacher.ref)
        for source in (p.sources if teacher_weights else []):
            if source == "finetuned" and teacher_dir is None:
                raise ValueError("a term reads the fine-tuned teacher: pass its directory (prepare_run makes it)")
            attention = needs_output(terms, "teacher", "attentions", cfg.distill, source)
            _, p.teachers[source] = load_teacher(cfg, attention=attention,
                                                 teacher_dir=teacher_dir if source == "finetuned" else None)
    teacher_tok = p.teacher_tok or (load_tokenizer(cfg.teacher.ref) if note_store is not None else None)
    p.train_examples, p.val_pieces, p.val_examples = encode_run_notes(cfg, splits, transfer, s_tok, teacher_tok,
                                                                      store=note_store)
    if cfg.distill.kd_on:
        warn_if_few_terms(p.train_examples, cfg.distill.selector)
    return p


def warn_if_few_terms(examples: EncodedNotes, selector: str) -> None:
    """KD learns only from notes with a term kept on both sides; when the selector matched (almost) nothing,
    or truncation cut what it matched, the run trains as its own KD-off control, so say so."""
    n = int((examples.kept_terms() > 0).sum())
    if n < FEW_TERMS * len(examples):
        _warn_once(f"warning: only {n} of {len(examples)} training notes ({n / len(examples):.1%}) have a term "
                   f"to distil with selector '{selector}'; the KD terms will be near zero")


@functools.cache
def _warn_once(message: str) -> None:
    """One line per message and process: `--seeds` prepares the same notes again for every seed."""
    print(message, file=sys.stderr)
