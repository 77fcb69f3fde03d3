"""One training loop for every process: `dsgkd train`, a Ray Train worker, the teacher's fine-tuning.

It reads top to bottom: prepare → optimiser → per epoch (train steps, validation, early stopping,
report) → best weights. Nothing here imports Ray. When `torch.distributed` is initialised (Ray Train
did it) the same loop shards batches by rank, wraps the trainable modules in DDP and gathers the
validation predictions, so every rank computes identical metrics and reports together.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import get_linear_schedule_with_warmup

from dsgkd.config import RunConfig
from dsgkd.features import collate, make_batches
from dsgkd.losses import (attention_grid, attention_kd_from_grids, hidden_kd_from_pooled, logit_kd_loss,
                          make_projection, pool_spans)
from dsgkd.metrics import binary_metrics, choose_threshold
from dsgkd.models.load import encoder_width
from dsgkd.prepare import Prepared, prepare
from dsgkd.teacher import CachedTeacher, LiveTeacher, TeacherOut

LOWER_IS_BETTER = {"brier", "loss"}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: the run cannot recover, so it stops with where it happened."""


class Distiller(nn.Module):
    """The trainable part of DSG-KD: the student and its student→teacher projection, one forward that
    returns CE on labelled rows plus the weighted KD terms against a given teacher signal."""

    def __init__(self, student: nn.Module, cfg: RunConfig, layer_pairs: list[tuple[int, int]],
                 teacher_width: int | None):
        super().__init__()
        self.student, self.d, self.pairs = student, cfg.distill, layer_pairs
        self.attn_pairs = [(t, s) for t, s in layer_pairs if t > 0 and s > 0] if self.d.beta > 0 else []
        self.proj = None
        if self.d.alpha > 0 and teacher_width is not None and self.d.hidden_loss != "relational":
            self.proj = make_projection(encoder_width(student), teacher_width, self.d.projection)

    def forward(self, batch: dict, teacher: TeacherOut | None) -> tuple[torch.Tensor, dict, torch.Tensor]:
        kd = teacher is not None
        out = self.student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"],
                           output_hidden_states=kd and self.d.alpha > 0,
                           output_attentions=kd and bool(self.attn_pairs))
        logits, labels = out.logits, batch["labels"]
        labelled = labels >= 0
        ce = F.cross_entropy(logits[labelled], labels[labelled]) if labelled.any() else logits.sum() * 0
        parts = {"ce": ce}
        loss = ce
        if kd and self.d.alpha > 0:
            s_states = torch.stack([out.hidden_states[s] for _, s in self.pairs])
            parts["hidden"] = hidden_kd_from_pooled(teacher.pooled_for([t for t, _ in self.pairs]),
                                                    pool_spans(s_states, batch["s_spans"]),
                                                    batch["term_mask"], self.proj, self.d.hidden_loss)
            loss = loss + self.d.alpha * parts["hidden"]
        if kd and self.attn_pairs:
            s_attn = torch.stack([out.attentions[s - 1] for _, s in self.attn_pairs])
            parts["attention"] = attention_kd_from_grids(teacher.grid_for([t for t, _ in self.attn_pairs]),
                                                         attention_grid(s_attn, batch["s_spans"]),
                                                         batch["term_mask"])
            loss = loss + self.d.beta * parts["attention"]
        if kd and self.d.gamma > 0 and labelled.any():
            parts["logit"] = logit_kd_loss(logits, teacher.logits, self.d.temperature)
            loss = loss + self.d.gamma * parts["logit"]
        return loss, parts, logits


@dataclass
class EpochReport:
    epoch: int
    metrics: dict[str, float]
    is_best: bool
    _save: Callable[[Path], None] = field(repr=False)

    def save(self, directory: str | Path) -> None:
        """Write a checkpoint `fit(resume_from=directory)` continues from (call on rank 0 only)."""
        self._save(Path(directory))


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


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict(model: nn.Module, examples: list[dict], pad_id: int, batch_size: int,
            device: torch.device) -> tuple[np.ndarray, float]:
    """Positive-class probabilities in example order and the mean CE loss; sharded and gathered across
    ranks when distributed, so every rank returns the full, identical result."""
    rank, world = rank_world()
    model.eval()
    rows: dict[int, tuple[float, float]] = {}
    batches = make_batches([len(ex["s_ids"]) for ex in examples], batch_size * 2, shuffle=False,
                           rank=rank, world=world)
    for idx in batches:
        batch = _to(collate([examples[i] for i in idx], pad_id), device)
        with _autocast(device):
            logits = model(input_ids=batch["s_ids"], attention_mask=batch["s_mask"]).logits.float()
        probs = logits.softmax(-1)[:, 1]
        losses = F.cross_entropy(logits, batch["labels"].clamp(min=0), reduction="none")
        for i, p, l in zip(idx, probs.tolist(), losses.tolist()):
            rows[i] = (p, l)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = {k: v for part in gathered for k, v in part.items()}
    probs = np.array([rows[i][0] for i in range(len(examples))])
    return probs, float(np.mean([rows[i][1] for i in range(len(examples))]))


def validation_metrics(labels: np.ndarray, probs: np.ndarray, loss: float, how: str) -> dict[str, float]:
    threshold = choose_threshold(labels, probs, how) if len(set(labels.tolist())) > 1 else 0.5
    m = binary_metrics(labels, probs, threshold)
    return {"val_loss": loss, "val_auroc": m["auroc"], "val_auprc": m["auprc"], "val_f1": m["f1"],
            "val_brier": m["brier"], "val_ece": m["ece"], "val_threshold": threshold}


def is_better(value: float, best: float | None, metric: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def make_teacher_signal(p: Prepared, teacher_cache: str | Path | None, device: torch.device):
    if not p.cfg.distill.kd_on:
        return None
    logits = p.cfg.distill.gamma > 0
    if teacher_cache is not None:
        return CachedTeacher(teacher_cache, p.teacher_layers, p.teacher_attn_layers, logits)
    return LiveTeacher(p.teacher.to(device), p.teacher_layers, p.teacher_attn_layers, logits)


def make_optimizer(model: Distiller, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW with the encoder at `lr_encoder` and the head and projection at `lr_head`; no decay on
    biases and LayerNorm weights."""
    encoder = getattr(model.student, model.student.base_model_prefix)
    encoder_ids = {id(p) for p in encoder.parameters()}
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        lr = cfg.train.lr_encoder if id(param) in encoder_ids else cfg.train.lr_head
        decay = 0.0 if param.ndim < 2 else cfg.train.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()])


def train_step(trainable: nn.Module, batch: dict, signal, opt, sched, grad_clip: float,
               device: torch.device, where: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """One optimiser step on a collated batch; returns the loss and its parts as floats."""
    teacher_out = signal(batch, "train") if signal is not None else None
    with _autocast(device):
        loss, parts, _ = trainable(batch, teacher_out)
    finite = torch.isfinite(loss.detach()).float()
    if dist.is_available() and dist.is_initialized():  # every rank must stop at the same step, or DDP hangs
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if not finite.item():
        raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at epoch {where[0]} step {where[1]}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(trainable.parameters(), grad_clip)
    opt.step()
    sched.step()
    return {k: float(v.detach()) for k, v in {"loss": loss, **parts}.items()}


def fit(cfg: RunConfig, *, on_epoch: Callable[[EpochReport], None] | None = None,
        resume_from: str | Path | None = None, teacher_cache: str | Path | None = None,
        device: torch.device | None = None, prepared: Prepared | None = None) -> FitResult:
    """Train the student with DSG-KD (or the KD-off control) and keep the best validation epoch."""
    t = cfg.train
    p = prepared or prepare(cfg, teacher_weights=teacher_cache is None)
    device = device or pick_device(t.device)
    rank, world = rank_world()
    teacher_w = encoder_width(p.teacher_config) if p.teacher_config is not None else None
    torch.manual_seed(t.seed)  # the projection's init must not depend on what prepare consumed
    model = Distiller(p.student, cfg, p.layer_pairs, teacher_w).to(device)
    signal = make_teacher_signal(p, teacher_cache, device)
    lengths = [len(ex["s_ids"]) for ex in p.train_examples]
    steps_per_epoch = len(make_batches(lengths, t.batch_size, shuffle=False, rank=rank, world=world))
    opt = make_optimizer(model, cfg)
    sched = get_linear_schedule_with_warmup(opt, int(t.warmup_ratio * steps_per_epoch * t.epochs),
                                            steps_per_epoch * t.epochs)
    state = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0}
    best_weights = copy.deepcopy(model.state_dict())
    if resume_from is not None:
        state, best_weights = load_checkpoint(Path(resume_from), model, opt, sched)
    trainable = model
    if world > 1:
        trainable = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    s_pad, t_pad = p.student_tok.pad_token_id, p.teacher_tok.pad_token_id if signal is not None else None
    val_labels = np.array([ex["label"] for ex in p.val_examples])
    select = f"val_{t.select_metric}"

    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        torch.manual_seed(t.seed * 1000 + epoch)  # dropout stream depends only on (seed, epoch): resumable
        trainable.train()
        totals: dict[str, float] = {}
        batches = make_batches(lengths, t.batch_size, shuffle=True, seed=t.seed * 1000 + epoch,
                               bucket=t.bucket, rank=rank, world=world)
        for step, idx in enumerate(batches, 1):
            batch = _to(collate([p.train_examples[i] for i in idx], s_pad, t_pad), device)
            parts = train_step(trainable, batch, signal, opt, sched, t.grad_clip, device, where=(epoch, step))
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v
        probs, val_loss = predict(model.student, p.val_examples, s_pad, t.batch_size, device)
        metrics = {"epoch": epoch, **{f"train_{k}": v / max(len(batches), 1) for k, v in totals.items()},
                   **validation_metrics(val_labels, probs, val_loss, cfg.eval.threshold)}
        improved = is_better(metrics[select], state["best"], t.select_metric)
        if improved:
            state.update(best=metrics[select], best_epoch=epoch, bad_epochs=0, best_probs=probs.tolist())
            best_weights = copy.deepcopy(model.state_dict())
        else:
            state["bad_epochs"] += 1
        metrics.update(best_epoch=state["best_epoch"], **{f"best_{select}": state["best"]})
        state["history"].append(metrics)
        state["epoch"] = epoch
        if on_epoch is not None:
            snapshot = dict(state)
            on_epoch(EpochReport(epoch, metrics, improved,
                                 lambda d, s=snapshot, w=best_weights: save_checkpoint(d, model, opt, sched, s, w)))
        if state["bad_epochs"] >= t.patience:
            break

    model.load_state_dict(best_weights)
    student = model.student.cpu().eval()
    best_probs = np.array(state.get("best_probs") or probs.tolist())
    best = next(h for h in state["history"] if h["epoch"] == state["best_epoch"]) if state["best_epoch"] else metrics
    return FitResult(state["best_epoch"] or state["epoch"], state["history"], best, best["val_threshold"],
                     val_labels, best_probs, student, p.student_tok, p)


def save_checkpoint(directory: Path, model: nn.Module, opt, sched, state: dict, best_weights: dict) -> None:
    """Current weights as safetensors; the best epoch's state dict, optimiser and schedule as tensor-only
    torch files (read back with weights_only=True), so no second copy of the model is built to save them."""
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / "model.safetensors"))
    torch.save({"best": best_weights, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
               directory / "optim.pt")
    (directory / "state.json").write_text(json.dumps(state))


def load_checkpoint(directory: Path, model: nn.Module, opt, sched) -> tuple[dict, dict]:
    """Restore model, optimiser and schedule; returns the loop state and the best epoch's weights."""
    device = next(model.parameters()).device
    load_model(model, str(directory / "model.safetensors"), device=str(device))
    saved = torch.load(directory / "optim.pt", weights_only=True, map_location=device)
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    return json.loads((directory / "state.json").read_text()), saved["best"]
