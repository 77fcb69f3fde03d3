"""One training loop for every process: `dsgkd train`, a Ray Train worker, the teacher's fine-tuning.

`fit` reads top to bottom: model and teacher signal → optimiser and schedule → per epoch (train steps,
validation, early stopping, report) → best weights. It trains what it is given (`Prepared`, built by
`dsgkd.pipeline`); nothing here loads files by name or imports Ray. When `torch.distributed` is
initialised the same loop shards batches by rank and wraps the trainable modules in DDP.
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import get_linear_schedule_with_warmup

from dsgkd.config import RunConfig
from dsgkd.constants import lower_is_better
from dsgkd.data.emr import Splits
from dsgkd.core.distiller import Distiller
from dsgkd.core.encoded_notes import EncodedNotes
from dsgkd.core.features import collate, epoch_batches, example_labels, note_lengths
from dsgkd.core.long_notes import Pieces, note_labels
from dsgkd.core.steps import (Stepper, class_weights, make_optimizer, pick_device, predict, rank_world,
                              resolve_precision, to_device, validation_metrics)
from dsgkd.core.teacher.cache import CachedTeacher
from dsgkd.core.teacher.signal import LiveTeacher, TeacherSignals
from dsgkd.core.teacher.task_view import TaskViewReader, fit_task_probe
from dsgkd.core.terms import enabled, needs_output, sources, teacher_states
from dsgkd.errors import UserError
from dsgkd.models.load import encoder_width
from dsgkd.progress import Progress


@dataclass
class Prepared:
    """Everything a run trains on, loaded and checked before its first step (by `dsgkd.pipeline.prepare`)."""

    cfg: RunConfig
    splits: Splits
    transfer_texts: list[str]
    student_tok: object
    student: nn.Module
    teacher_tok: object | None = None
    teachers: dict[str, nn.Module] = field(default_factory=dict)  # by source; empty when the signal is cached
    teacher_config: object | None = None         # the teacher's shape, known with or without its weights
    layer_pairs: list[tuple[int, int]] = field(default_factory=list)
    train_examples: EncodedNotes | list[dict] = field(default_factory=list)  # labelled train notes, then transfer
    val_examples: EncodedNotes | list[dict] = field(default_factory=list)
    val_pieces: Pieces | None = None  # which note each validation example is a piece of (train.long_notes)

    @property
    def terms(self):
        """The KD terms this run sums: (term, weight, its layer pairs)."""
        return enabled(self.cfg.distill, self.layer_pairs)

    @property
    def sources(self) -> list[str]:
        """The teachers the enabled terms read ("pretrained", "finetuned")."""
        return sources(self.terms, self.cfg.distill)

    def teacher_layers(self, source: str | None = None) -> list[int]:
        """The teacher hidden states the enabled terms (reading `source`, if given) pool per term."""
        return teacher_states(self.terms, "hidden_states", self.cfg.distill, source)

    def teacher_attn_layers(self, source: str | None = None) -> list[int]:
        """The teacher states whose attentions the enabled terms (reading `source`, if given) read."""
        return teacher_states(self.terms, "attentions", self.cfg.distill, source)


@dataclass
class FitState:
    """What the loop carries from epoch to epoch, and what a checkpoint restores (as state.json)."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    best_probs: list[float] | None = None


@dataclass
class Checkpoint:
    """A resumable snapshot of the loop after one epoch: written only when a caller asks (rank 0)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    state: FitState
    best_weights: dict
    scaler: torch.amp.GradScaler | None = None  # fp16's loss scale: a resumed run continues at the same scale

    def save(self, directory: str | Path) -> None:
        """Current weights as safetensors; the best epoch's state dict, optimiser and schedule as tensor-only
        torch files (read back with weights_only=True), so no second copy of the model is built to save them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self.model, str(directory / "model.safetensors"))
        torch.save({"best": self.best_weights, "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    **({"scaler": self.scaler.state_dict()} if self.scaler and self.scaler.is_enabled() else {})},
                   directory / "optim.pt")
        (directory / "state.json").write_text(json.dumps(asdict(self.state)))


def load_checkpoint(directory: Path, model: nn.Module, opt, sched, scaler=None) -> tuple[FitState, dict]:
    """Restore model, optimiser, schedule (and fp16's loss scale); returns the loop state and the best epoch's
    weights."""
    device = next(model.parameters()).device
    load_model(model, str(directory / "model.safetensors"), device=str(device))
    saved = torch.load(directory / "optim.pt", weights_only=True, map_location=device)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    if scaler is not None and "scaler" in saved:
        scaler.load_state_dict(saved["scaler"])
    return FitState(**json.loads((directory / "state.json").read_text())), saved["best"]


@dataclass
class EpochReport:
    epoch: int
    metrics: dict[str, float]
    is_best: bool
    checkpoint: Checkpoint = field(repr=False)

    def save(self, directory: str | Path) -> None:
        """Write a checkpoint `fit(resume_from=directory)` continues from (call on rank 0 only)."""
        self.checkpoint.save(directory)

    @property
    def at_best(self) -> dict[str, float]:
        """The validation metrics of the best epoch so far, whose weights the run keeps: a search scores a second
        objective there, not at the epoch it happened to peak on its own. Empty before any epoch improved."""
        state = self.checkpoint.state
        row = next((h for h in state.history if h["epoch"] == state.best_epoch), {})
        return {k: v for k, v in row.items() if k.startswith("val_")}


@dataclass
class FitResult:
    best_epoch: int
    history: list[dict[str, float]]
    metrics: dict[str, float]          # validation metrics of the best epoch
    threshold: float                   # chosen on validation at the best epoch
    val_labels: np.ndarray
    val_probs: np.ndarray
    model: nn.Module                   # the student with the best epoch's weights, on CPU
    tokenizer: object
    prepared: Prepared
    precision: str = "fp32"            # `train.precision` as resolved on the device it ran on
    effective_batch_size: int = 0      # batch_size × grad_accum × workers: notes per optimiser step


def is_better(value: float, best: float | None, metric: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if lower_is_better(metric) else value > best


def make_teacher_signal(p: Prepared, teacher_cache: str | Path | dict | None, device: torch.device):
    """The outputs the enabled terms read of each teacher they read, from caches or live frozen teachers; None
    without KD. `teacher_cache`: source → cache directory, or one directory when the terms read one teacher."""
    terms = p.terms
    if not terms:
        return None
    readers = {}
    for source in p.sources:
        need = (p.teacher_layers(source), p.teacher_attn_layers(source),
                needs_output(terms, "teacher", "logits", p.cfg.distill, source))
        if teacher_cache is None:
            readers[source] = LiveTeacher(p.teachers[source].to(device), *need)
        else:
            readers[source] = CachedTeacher(_cache_of(teacher_cache, source, p.sources), *need)
    hidden = next((term for term, _, _ in terms if term.name == "hidden"), None)
    if hidden is not None and p.cfg.distill.hidden_view == "task":
        source = hidden.source(p.cfg.distill)
        probe = fit_task_probe(readers[source], p.train_examples, p.student_tok.pad_token_id,
                               p.teacher_tok.pad_token_id, p.cfg.train.batch_size, device)
        readers[source] = TaskViewReader(readers[source], probe)
    return TeacherSignals(readers)


def _cache_of(teacher_cache: str | Path | dict, source: str, needed: list[str]) -> str | Path:
    if isinstance(teacher_cache, dict):
        if source not in teacher_cache:
            raise UserError(f"teacher cache: none for the {source} teacher (have {', '.join(teacher_cache)})")
        return teacher_cache[source]
    if len(needed) > 1:
        raise UserError(f"teacher cache: the terms read {' and '.join(needed)} teachers; give a cache per teacher")
    return teacher_cache


def fit(prepared: Prepared, *, on_epoch: Callable[[EpochReport], None] | None = None,
        resume_from: str | Path | None = None, teacher_cache: str | Path | dict | None = None,
        device: torch.device | None = None) -> FitResult:
    """Train the student with DSG-KD (or the KD-off control) and keep the best validation epoch."""
    p = prepared
    cfg, t = p.cfg, p.cfg.train
    device = device or pick_device(t.device)
    rank, world = rank_world()
    teacher_w = encoder_width(p.teacher_config) if p.teacher_config is not None else None
    torch.manual_seed(t.seed)  # the projection's init must not depend on what preparing consumed
    labels = example_labels(p.train_examples)
    weights = class_weights(t.class_weight, labels[labels >= 0].tolist())
    model = Distiller(p.student, cfg.distill, p.layer_pairs, teacher_w, class_weights=weights,
                      label_smoothing=t.label_smoothing).to(device)
    signal = make_teacher_signal(p, teacher_cache, device)
    precision = resolve_precision(t.precision, device)
    lengths = note_lengths(p.train_examples)
    batching = {"alongside": t.transfer_batching == "alongside", "kd_on": cfg.distill.kd_on, "bucket": t.bucket,
                "rank": rank, "world": world}
    n_batches = len(epoch_batches(labels, lengths, t.batch_size, shuffle=False, **batching))
    steps_per_epoch = math.ceil(n_batches / t.grad_accum)
    opt = make_optimizer(model, cfg)
    sched = get_linear_schedule_with_warmup(opt, int(t.warmup_ratio * steps_per_epoch * t.epochs),
                                            steps_per_epoch * t.epochs)
    trainable = model
    if world > 1:
        trainable = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    stepper = Stepper(trainable, signal, opt, sched, grad_clip=t.grad_clip, device=device, precision=precision)
    state, best_weights = FitState(), copy.deepcopy(model.state_dict())
    if resume_from is not None:
        state, best_weights = load_checkpoint(Path(resume_from), model, opt, sched, stepper.scaler)
    s_pad, t_pad = p.student_tok.pad_token_id, p.teacher_tok.pad_token_id if signal is not None else None
    val_labels = note_labels(example_labels(p.val_examples), p.val_pieces) if p.val_pieces else \
        example_labels(p.val_examples)
    select = f"val_{t.select_metric}"

    for epoch in range(state.epoch + 1, t.epochs + 1):
        torch.manual_seed(t.seed * 1000 + epoch)  # dropout stream depends only on (seed, epoch): resumable
        trainable.train()
        totals: dict[str, float] = {}
        batches = epoch_batches(labels, lengths, t.batch_size, shuffle=True, seed=t.seed * 1000 + epoch, **batching)
        groups = [batches[i:i + t.grad_accum] for i in range(0, len(batches), t.grad_accum)]
        with Progress(len(groups), f"epoch {epoch}/{t.epochs}", "steps", enabled=rank == 0) as bar:
            for step, group in enumerate(groups, 1):
                parts = stepper.step([to_device(collate([p.train_examples[i] for i in idx], s_pad, t_pad), device)
                                      for idx in group], where=(epoch, step))
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0.0) + v
                bar.update()
        probs, val_loss = predict(model.student, p.val_examples, s_pad, t.batch_size, device, precision=precision,
                                  pieces=p.val_pieces)
        metrics = {"epoch": epoch, **{f"train_{k}": v / max(len(groups), 1) for k, v in totals.items()},
                   **validation_metrics(val_labels, probs, val_loss, cfg.eval.threshold)}
        improved = is_better(metrics[select], state.best, t.select_metric)
        if improved:
            state.best, state.best_epoch, state.bad_epochs = metrics[select], epoch, 0
            state.best_probs = probs.tolist()
            best_weights = copy.deepcopy(model.state_dict())
        else:
            state.bad_epochs += 1
        metrics.update(best_epoch=state.best_epoch, **{f"best_{select}": state.best})
        state.history.append(metrics)
        state.epoch = epoch
        if on_epoch is not None:
            snapshot = replace(state, history=list(state.history))
            on_epoch(EpochReport(epoch, metrics, improved, Checkpoint(model, opt, sched, snapshot, best_weights,
                                                                      stepper.scaler)))
        if state.bad_epochs >= t.patience:
            break

    model.load_state_dict(best_weights)
    student = model.student.cpu().eval()
    best_probs = np.array(state.best_probs or probs.tolist())
    best = next(h for h in state.history if h["epoch"] == state.best_epoch) if state.best_epoch else metrics
    return FitResult(state.best_epoch or state.epoch, state.history, best, best["val_threshold"],
                     val_labels, best_probs, student, p.student_tok, p, precision, t.batch_size * t.grad_accum * world)
