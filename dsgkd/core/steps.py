"""The pieces of one training loop: device and rank, the optimiser, one step, one prediction pass.

Distributed-aware without Ray: when `torch.distributed` is initialised (Ray Train did it) batches are
sharded by rank, and predictions are gathered so every rank computes identical validation metrics.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dsgkd.config import RunConfig
from dsgkd.core.features import collate, make_batches, note_lengths
from dsgkd.core.long_notes import Pieces, pool_logits
from dsgkd.core.metrics import binary_metrics, choose_threshold
from dsgkd.core.temperature import positive_prob
from dsgkd.errors import NonFiniteLossError, UserError


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pick_device(spec: str) -> torch.device:
    """The device `train.device` names, or a UserError when this machine has none: torch would only fail
    at the first `.to()`, after the data and models were loaded, with a screen of traceback."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            built = "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}"
            raise UserError(f"train.device {spec}: not on this machine ({count} CUDA device(s), torch "
                            f"{torch.__version__} built {built}); use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"train.device {spec}: MPS is not available on this machine; use --device cpu or auto")
    return device


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(spec: str, device: torch.device) -> str:
    """`train.precision` on this device: auto is bf16 on a CUDA card with bf16 (Ampere and later), fp16 (with a
    gradient scaler) on older cards, fp32 on CPU and MPS, where autocast buys little and fp16 cannot scale."""
    if spec != "auto":
        return spec
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def autocast(device: torch.device, precision: str | None = None):
    precision = resolve_precision(precision or "auto", device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def class_weights(spec, labels) -> torch.Tensor | None:
    """The task loss's per-class weights for `train.class_weight`: None (unweighted), balanced (n / (2 n_c) over
    the labelled training notes, so each class carries half the loss), or a number for the positive class."""
    if spec == "none":
        return None
    if spec == "balanced":
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=2).astype(np.float64)
        if (counts == 0).any():
            raise UserError("train.class_weight balanced: the labelled training notes lack a class")
        return torch.tensor(counts.sum() / (2 * counts), dtype=torch.float32)
    return torch.tensor([1.0, float(spec)])


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict_logits(model: nn.Module, examples: list[dict], pad_id: int, batch_size: int,
                   device: torch.device, precision: str | None = None,
                   pieces: Pieces | None = None) -> tuple[np.ndarray, float]:
    """(n, 2) logits in example order, or per note when the examples are `pieces` of notes (pooled by
    `long_notes.pool_logits`), and the mean CE loss over examples; sharded and gathered across ranks when
    distributed, so every rank returns the full, identical result. Logits, not probabilities, so that a
    temperature can be fitted and applied without inverting a saturated softmax."""
    rank, world = rank_world()
    model.eval()
    rows: dict[int, tuple[list[float], float]] = {}
    batches = make_batches(note_lengths(examples), batch_size * 2, shuffle=False,
                           rank=rank, world=world)
    for idx in batches:
        batch = to_device(collate([examples[i] for i in idx], pad_id), device)
        with autocast(device, precision):
            logits = model(input_ids=batch["s_ids"], attention_mask=batch["s_mask"]).logits.float()
        losses = F.cross_entropy(logits, batch["labels"].clamp(min=0), reduction="none")
        for i, z, l in zip(idx, logits.tolist(), losses.tolist()):
            rows[i] = (z, l)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = {k: v for part in gathered for k, v in part.items()}
    logits = np.array([rows[i][0] for i in range(len(examples))], dtype=np.float64).reshape(len(examples), -1)
    if pieces is not None:
        logits = pool_logits(logits, pieces)
    return logits, float(np.mean([rows[i][1] for i in range(len(examples))]))


def predict(model: nn.Module, examples: list[dict], pad_id: int, batch_size: int, device: torch.device,
            temperature: float = 1.0, precision: str | None = None,
            pieces: Pieces | None = None) -> tuple[np.ndarray, float]:
    """Positive-class probabilities softmax(logits / temperature)[:, 1] in example order and the mean CE loss
    of the raw logits (`predict_logits`)."""
    logits, loss = predict_logits(model, examples, pad_id, batch_size, device, precision, pieces)
    return positive_prob(logits, temperature), loss


def validation_metrics(labels: np.ndarray, probs: np.ndarray, loss: float, how: str) -> dict[str, float]:
    threshold = choose_threshold(labels, probs, how) if len(set(labels.tolist())) > 1 else 0.5
    m = binary_metrics(labels, probs, threshold)
    return {"val_loss": loss, "val_auroc": m["auroc"], "val_auprc": m["auprc"], "val_f1": m["f1"],
            "val_brier": m["brier"], "val_ece": m["ece"], "val_threshold": threshold}


def make_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
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


class Stepper:
    """Optimiser steps over groups of batches: each batch's loss is backpropagated at 1 / (batches in its group)
    (gradient accumulation: a group of `grad_accum` batches is one optimiser step, as one batch that size would
    be when its batches carry equal shares of the loss), under `precision`'s autocast, with a gradient scaler
    for fp16 so small gradients do not flush to zero. Under DDP only a group's last batch all-reduces."""

    def __init__(self, trainable: nn.Module, signal, opt, sched, *, grad_clip: float, device: torch.device,
                 precision: str = "fp32"):
        self.trainable, self.signal, self.opt, self.sched = trainable, signal, opt, sched
        self.grad_clip, self.device, self.precision = grad_clip, device, precision
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step(self, group: list[dict], where: tuple[int, int] = (0, 0)) -> dict[str, float]:
        """One optimiser step over a group of collated batches; returns the loss and its parts, averaged."""
        self.opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for i, batch in enumerate(group):
            last = i == len(group) - 1
            no_sync = getattr(self.trainable, "no_sync", None)
            with contextlib.nullcontext() if last or no_sync is None else no_sync():
                parts = self._backward(batch, 1 / len(group), where)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v / len(group)
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(self.trainable.parameters(), self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        return totals

    def _backward(self, batch: dict, share: float, where: tuple[int, int]) -> dict[str, float]:
        teacher_out = self.signal(batch, "train") if self.signal is not None else None
        with autocast(self.device, self.precision):
            loss, parts, _ = self.trainable(batch, teacher_out)
        finite = torch.isfinite(loss.detach()).float()
        if dist.is_available() and dist.is_initialized():  # every rank must stop at the same step, or DDP hangs
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite.item():
            raise NonFiniteLossError.at(*where, loss.item(), {k: v.item() for k, v in parts.items()})
        self.scaler.scale(loss * share).backward()
        return {k: float(v.detach()) for k, v in {"loss": loss, **parts}.items()}

