"""One DSG-KD training step at base size on a GPU: samples/s, peak memory and model FLOPs utilisation.

A random-init BERT-base teacher (12 layers, 768, 12 heads; frozen, bf16, run live every step, the worst
case for the cache) and an XLM-R-base-shaped student (250,002-token vocabulary), every layer mapped index
to index, alpha 0.6 and beta 0.2, T = 384, batch 32, `--precision bf16` (or fp16 with the gradient scaler, as
on a V100 / T4): the `Distiller` and `Stepper` that `dsgkd train` runs, on random token ids with 32 random 1–3-token terms a note. MFU counts the model FLOPs
of the step (student forward + backward 3 × 2·N·T, teacher forward 2·N·T, plus the attention score and
value products) over the wall time and the GPU's dense bf16 peak (`--peak-tflops`, 989 for an H100/H200).
`--shape small --device cpu` runs the same code at toy size (how CI checks it). Prints JSON.

    python benchmarks/gpu_step.py [--steps 20 --batch 32 --tokens 384] [--precision fp16]   # on a GPU
    python benchmarks/gpu_step.py --shape small --device cpu --steps 2 --batch 2 --tokens 32
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertForSequenceClassification, XLMRobertaConfig, XLMRobertaForSequenceClassification

from dsgkd.config import RunConfig
from dsgkd.core.distiller import Distiller
from dsgkd.core.layer_maps import attention_states, resolve_layer_map
from dsgkd.core.steps import AUTOCAST_DTYPES, Stepper, make_optimizer, resolve_precision
from dsgkd.core.teacher.signal import LiveTeacher, TeacherSignals

SHAPES = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
          "small": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)}
VOCAB = {"base": (30522, 250002), "small": (1000, 2000)}


def models(shape: str, tokens: int):
    common = dict(SHAPES[shape], max_position_embeddings=max(512, tokens + 2), attn_implementation="eager")
    t_vocab, s_vocab = VOCAB[shape]
    teacher = BertForSequenceClassification(BertConfig(vocab_size=t_vocab, **common))
    student = XLMRobertaForSequenceClassification(XLMRobertaConfig(vocab_size=s_vocab, type_vocab_size=1, **common))
    return teacher, student


def batch(b: int, t: int, w: int, vocab: tuple[int, int], device) -> dict:
    g = torch.Generator().manual_seed(0)
    starts = torch.randint(1, t - 4, (b, w), generator=g)
    spans = torch.stack([starts, starts + torch.randint(1, 4, (b, w), generator=g)], -1)
    out = {"t_ids": torch.randint(5, vocab[0], (b, t), generator=g), "s_ids": torch.randint(5, vocab[1], (b, t), generator=g),
           "t_mask": torch.ones(b, t, dtype=torch.long), "s_mask": torch.ones(b, t, dtype=torch.long),
           "t_spans": spans, "s_spans": spans, "term_mask": torch.ones(b, w, dtype=torch.bool),
           "labels": torch.randint(0, 2, (b,), generator=g), "idx": torch.arange(b)}
    return {k: v.to(device) for k, v in out.items()}


def step_flops(teacher, student, b: int, t: int) -> float:
    """Matmul FLOPs of one step: 2·N·T per forward over the non-embedding weights, + attention's QKᵀ and AV."""
    def dense(model) -> int:
        return sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "embeddings" not in n)

    def attention(model) -> float:
        c = model.config
        return 2 * 2 * c.num_hidden_layers * t * t * c.hidden_size

    per_note = 3 * (2 * dense(student) * t + attention(student)) + 2 * dense(teacher) * t + attention(teacher)
    return float(per_note * b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="base")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=384)
    ap.add_argument("--terms", type=int, default=32)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto")
    a = ap.parse_args()
    device = torch.device(a.device)
    precision = resolve_precision(a.precision, device)
    torch.manual_seed(0)
    teacher, student = models(a.shape, a.tokens)
    layers = teacher.config.num_hidden_layers
    cfg = RunConfig().with_overrides({"distill.layer_map": "all", "train.batch_size": a.batch,
                                      "train.max_length": a.tokens})
    pairs = resolve_layer_map("all", layers, student.config.num_hidden_layers)
    model = Distiller(student, cfg.distill, pairs, teacher.config.hidden_size).to(device)
    dtype = AUTOCAST_DTYPES.get(precision, torch.float32)  # the frozen teacher runs in the step's precision
    t_states = sorted({t for t, _ in pairs})
    signal = TeacherSignals({"pretrained": LiveTeacher(teacher.to(device, dtype=dtype), t_states,
                                                       attention_states(t_states), logits=False)})
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    data = batch(a.batch, a.tokens, a.terms, VOCAB[a.shape], device)
    stepper = Stepper(model.train(), signal, opt, sched, grad_clip=1.0, device=device, precision=precision)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(a.warmup):
        stepper.step([data])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        parts = stepper.step([data])
    sync()
    seconds = (time.perf_counter() - t0) / a.steps
    flops = step_flops(teacher, student, a.batch, a.tokens)
    print(json.dumps({
        "benchmark": "gpu_step", "shape": a.shape, "device": str(device), "precision": precision,
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None, "batch": a.batch,
        "tokens": a.tokens, "terms": a.terms, "steps": a.steps, "samples_per_s": round(a.batch / seconds, 1),
        "step_ms": round(seconds * 1000, 1), "peak_memory_gb":
            round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        "model_tflop_per_step": round(flops / 1e12, 3),
        "mfu": round(flops / seconds / (a.peak_tflops * 1e12), 4) if device.type == "cuda" else None,
        "loss_parts": {k: round(v, 4) for k, v in parts.items()}}))


if __name__ == "__main__":
    main()
