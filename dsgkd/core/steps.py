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
from dsgkd.core.features import collate, make_batches
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


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict_logits(model: nn.Module, examples: list[dict], pad_id: int, batch_size: int,
                   device: torch.device) -> tuple[np.ndarray, float]:
    """(n, 2) logits in example order and the mean CE loss; sharded and gathered across ranks when
    distributed, so every rank returns the full, identical result. Logits, not probabilities, so that a
    temperature can be fitted and applied without inverting a saturated softmax."""
    rank, world = rank_world()
    model.eval()
    rows: dict[int, tuple[list[float], float]] = {}
    batches = make_batches([len(ex["s_ids"]) for ex in examples], batch_size * 2, shuffle=False,
                           rank=rank, world=world)
    for idx in batches:
        batch = to_device(collate([examples[i] for i in idx], pad_id), device)
        with autocast(device):
            logits = model(input_ids=batch["s_ids"], attention_mask=batch["s_mask"]).logits.float()
        losses = F.cross_entropy(logits, batch["labels"].clamp(min=0), reduction="none")
        for i, z, l in zip(idx, logits.tolist(), losses.tolist()):
            rows[i] = (z, l)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rows)
        rows = {k: v for part in gathered for k, v in part.items()}
    logits = np.array([rows[i][0] for i in range(len(examples))], dtype=np.float64).reshape(len(examples), -1)
    return logits, float(np.mean([rows[i][1] for i in range(len(examples))]))


def predict(model: nn.Module, examples: list[dict], pad_id: int, batch_size: int, device: torch.device,
            temperature: float = 1.0) -> tuple[np.ndarray, float]:
    """Positive-class probabilities softmax(logits / temperature)[:, 1] in example order and the mean CE loss
    of the raw logits (`predict_logits`)."""
    logits, loss = predict_logits(model, examples, pad_id, batch_size, device)
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


def train_step(trainable: nn.Module, batch: dict, signal, opt, sched, grad_clip: float,
               device: torch.device, where: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """One optimiser step on a collated batch; returns the loss and its parts as floats."""
    teacher_out = signal(batch, "train") if signal is not None else None
    with autocast(device):
        loss, parts, _ = trainable(batch, teacher_out)
    finite = torch.isfinite(loss.detach()).float()
    if dist.is_available() and dist.is_initialized():  # every rank must stop at the same step, or DDP hangs
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if not finite.item():
        raise NonFiniteLossError.at(*where, loss.item(), {k: v.item() for k, v in parts.items()})
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(trainable.parameters(), grad_clip)
    opt.step()
    sched.step()
    return {k: float(v.detach()) for k, v in {"loss": loss, **parts}.items()}
