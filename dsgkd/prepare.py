"""Everything a run needs before its first step, checked before anything is written.

`prepare` loads the notes, both tokenizers and models, resolves the layer map against both depths and
checks `max_length` against both models, so a bad ref, map or length is a one-line `UserError` raised
before `dsgkd train` creates its output directory or a search starts Ray.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dsgkd.config import RunConfig
from dsgkd.data.emr import Splits, load_splits, load_unlabeled
from dsgkd.errors import UserError
from dsgkd.features import encode_notes
from dsgkd.layers import resolve_layer_map
from dsgkd.models.load import encoder_depth, load_classifier, load_config, load_tokenizer, max_positions
from dsgkd.models.registry import resolve
from dsgkd.models.tiny import cache_root
from dsgkd.teacher import cache_key, write_cache


@dataclass
class Prepared:
    cfg: RunConfig
    splits: Splits
    transfer_texts: list[str]
    student_tok: object
    student: torch.nn.Module
    teacher_tok: object | None = None
    teacher: torch.nn.Module | None = None       # None when the teacher signal comes from a cache
    teacher_config: object | None = None         # the teacher's shape, known with or without its weights
    layer_pairs: list[tuple[int, int]] = field(default_factory=list)
    train_examples: list[dict] = field(default_factory=list)   # labelled train notes, then transfer notes
    val_examples: list[dict] = field(default_factory=list)

    @property
    def teacher_layers(self) -> list[int]:
        return sorted({t for t, _ in self.layer_pairs})

    @property
    def attn_pairs(self) -> list[tuple[int, int]]:
        return [(t, s) for t, s in self.layer_pairs if t > 0 and s > 0]

    @property
    def teacher_attn_layers(self) -> list[int]:
        return sorted({t for t, _ in self.attn_pairs}) if self.cfg.distill.beta > 0 else []


def train_texts(splits: Splits, transfer_texts: list[str]) -> list[str]:
    """The KD pool: labelled training notes first, then the unlabeled transfer notes."""
    return list(splits.train["text"]) + list(transfer_texts)


def load_transfer(cfg: RunConfig) -> list[str]:
    d = cfg.data
    if not d.transfer_path:
        return []
    return load_unlabeled(d.transfer_path, d.transfer_text_col or d.text_col, d.encoding, d.max_transfer)


def check_max_length(cfg: RunConfig, tok, model, role: str, ref: str) -> None:
    limit = max_positions(tok, model)
    if cfg.train.max_length > limit:
        raise UserError(f"train.max_length {cfg.train.max_length} exceeds {role} '{ref}' limit of {limit} tokens")


def prepare(cfg: RunConfig, *, splits: Splits | None = None, teacher_weights: bool = True) -> Prepared:
    """Load and validate data, models and the layer map; encode the notes for both tokenizers once.

    `teacher_weights=False` is for runs that read the teacher signal from a cache: only the teacher's
    tokenizer and config are loaded, not a frozen copy of its weights in every trial.
    """
    splits = splits or load_splits(cfg.data)
    transfer = load_transfer(cfg)
    torch.manual_seed(cfg.train.seed)  # the student's fresh classifier head is drawn here
    s_tok, student = load_classifier(cfg.student.ref, random_init=cfg.student.random_init,
                                     output_attentions=cfg.distill.beta > 0)
    check_max_length(cfg, s_tok, student, "student", cfg.student.ref)
    p = Prepared(cfg, splits, transfer, s_tok, student)
    if cfg.distill.kd_on:
        if teacher_weights:
            p.teacher_tok, p.teacher = load_teacher(cfg, splits, attention=cfg.distill.beta > 0)
            p.teacher_config = p.teacher.config
        else:
            p.teacher_tok, p.teacher_config = load_tokenizer(cfg.teacher.ref), load_config(cfg.teacher.ref)
        check_max_length(cfg, p.teacher_tok, p.teacher_config, "teacher", cfg.teacher.ref)
        p.layer_pairs = resolve_layer_map(cfg.distill.layer_map, encoder_depth(p.teacher_config),
                                          encoder_depth(student))
    d, t = cfg.distill, cfg.train
    labels = list(splits.train["label"]) + [-1] * len(transfer)
    p.train_examples = encode_notes(train_texts(splits, transfer), labels, s_tok, p.teacher_tok,
                                    selector=d.selector, max_terms=d.max_terms, max_length=t.max_length)
    p.val_examples = encode_notes(list(splits.val["text"]), list(splits.val["label"]), s_tok, None,
                                  selector=d.selector, max_terms=d.max_terms, max_length=t.max_length)
    return p


def teacher_identity(cfg: RunConfig) -> str:
    """What makes two teachers the same: source (a stand-in's dir carries its content key), how it was
    initialised, and for a fine-tuned one the whole fine-tuning recipe."""
    r = resolve(cfg.teacher.ref)
    recipe = teacher_finetune_config(cfg).train.model_dump(mode="json") if cfg.teacher.finetune else None
    return json.dumps([r.source, cfg.teacher.random_init, cfg.teacher.finetune, recipe, cfg.train.seed])


def load_teacher(cfg: RunConfig, splits: Splits, *, attention: bool):
    """The frozen teacher: pretrained, randomly initialised (knowledge-free control), or either of those
    fine-tuned once on this task's training split (for logit KD), the latter cached by data fingerprint."""
    if cfg.teacher.finetune:
        return load_classifier(str(finetuned_teacher_dir(cfg, splits)), output_attentions=attention)
    if cfg.teacher.random_init:
        torch.manual_seed(cfg.train.seed)
        return load_classifier(cfg.teacher.ref, random_init=True, output_attentions=attention)
    return load_classifier(cfg.teacher.ref, output_attentions=attention)


def teacher_finetune_config(cfg: RunConfig) -> RunConfig:
    """The teacher's own fine-tuning run: its learning rates, not the student's, so a search over student
    LRs shares one fine-tuned teacher instead of making one per value."""
    return cfg.with_overrides({
        "student.ref": cfg.teacher.ref, "student.random_init": cfg.teacher.random_init,
        "teacher.finetune": False, "teacher.random_init": False, "train.epochs": cfg.teacher.finetune_epochs,
        "train.lr_encoder": cfg.teacher.finetune_lr_encoder, "train.lr_head": cfg.teacher.finetune_lr_head,
        "train.patience": max(cfg.train.patience, 3), "distill.alpha": 0.0,
        "distill.beta": 0.0, "distill.gamma": 0.0, "data.transfer_path": None})


def finetuned_teacher_dir(cfg: RunConfig, splits: Splits) -> Path:
    """Fine-tuned once per (teacher, init, data, seed, recipe) and cached: every trial of a search and every
    row of a table that names the same teacher reuses it."""
    from dsgkd.engine import fit  # the teacher is fine-tuned by the same loop as any student

    tuned_cfg = teacher_finetune_config(cfg)
    key = hashlib.sha256(json.dumps([teacher_identity(cfg), splits.fingerprint]).encode()).hexdigest()[:16]
    final = cache_root() / "teachers" / f"{Path(cfg.teacher.ref).name}-{key}"
    if (final / "config.json").is_file():
        return final
    result = fit(tuned_cfg)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tuning-", dir=final.parent))
    result.model.save_pretrained(tmp)
    result.tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_cache(cfg: RunConfig, layers: list[int], out_dir: str | Path, *, attention: bool | None = None,
                device: torch.device | None = None) -> Path:
    """Teacher signal for the KD pool (train + transfer notes) of `cfg`, for the given teacher layers.

    `attention` defaults to `distill.beta > 0`; a search passes True when any trial may ask for it.
    Returns the cache directory (reused when it already exists for the same key).
    """
    splits = load_splits(cfg.data)
    transfer = load_transfer(cfg)
    attention = cfg.distill.beta > 0 if attention is None else attention
    tok, model = load_teacher(cfg, splits, attention=attention)
    depth = encoder_depth(model)
    if max(layers) > depth:
        raise UserError(f"teacher cache: layer {max(layers)} out of range for '{cfg.teacher.ref}' (0..{depth})")
    attn_layers = sorted(x for x in layers if x > 0) if attention else []
    d = cfg.distill
    fp = hashlib.sha256("\n".join([splits.fingerprint, *transfer]).encode()).hexdigest()
    key = cache_key(teacher_identity(cfg), fp, max_length=cfg.train.max_length, selector=d.selector,
                    max_terms=d.max_terms, layers=sorted(layers), attn_layers=attn_layers,
                    logits=cfg.teacher.finetune)
    return write_cache(model, tok, {"train": train_texts(splits, transfer)}, Path(out_dir), key=key,
                       max_length=cfg.train.max_length, selector=d.selector, max_terms=d.max_terms,
                       layers=sorted(layers), attn_layers=attn_layers, logits=cfg.teacher.finetune,
                       device=device)
