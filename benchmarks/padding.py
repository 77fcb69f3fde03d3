"""Training samples/s with dynamic padding + length buckets vs padding every note to 384 tokens.

Same notes, same DSG-KD step (live teacher, hidden + attention KD, backward, AdamW) through
`dsgkd.core.steps.train_step`; only the batching differs. Prints JSON.

    python benchmarks/padding.py [--teacher kmbert-tiny --student xlmr-tiny --notes 800 --steps 20]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import get_constant_schedule

from dsgkd.config import RunConfig
from dsgkd.data.synthetic import generate_notes, write_table
from dsgkd.core.distiller import Distiller
from dsgkd.core.engine import make_teacher_signal
from dsgkd.core.features import collate, make_batches
from dsgkd.core.steps import make_optimizer, train_step
from dsgkd.models.load import encoder_width
from dsgkd.pipeline.prepare import prepare


def samples_per_second(p, cfg, *, bucket: bool, pad_to: int | None, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = Distiller(p.student, cfg, p.layer_pairs, encoder_width(p.teacher_config))
    opt = make_optimizer(model, cfg)
    sched = get_constant_schedule(opt)
    signal = make_teacher_signal(p, None, torch.device("cpu"))
    lengths = [len(ex["s_ids"]) for ex in p.train_examples]
    batches = make_batches(lengths, cfg.train.batch_size, shuffle=True, seed=0, bucket=bucket)[:steps + 2]
    tokens = n = 0
    elapsed = 0.0
    for k, idx in enumerate(batches):
        batch = collate([p.train_examples[i] for i in idx], p.student_tok.pad_token_id,
                        p.teacher_tok.pad_token_id, pad_to=pad_to)
        t0 = time.perf_counter()
        train_step(model.train(), batch, signal, opt, sched, 1.0, torch.device("cpu"))
        if k >= 2:  # the first steps warm up allocators
            elapsed += time.perf_counter() - t0
            n += len(idx)
            tokens += batch["s_ids"].numel()
    return n / elapsed, tokens / max(n, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="kmbert-tiny")
    ap.add_argument("--student", default="xlmr-tiny")
    ap.add_argument("--notes", type=int, default=800)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "notes.csv"
        write_table(generate_notes(a.notes, seed=0), path)
        cfg = RunConfig().with_overrides({
            "data.path": str(path), "data.text_col": "ER_DHX", "data.label_col": "LABEL",
            "teacher.ref": a.teacher, "student.ref": a.student, "distill.layer_map": "uniform",
            "train.max_length": 384, "train.batch_size": a.batch_size})
        p = prepare(cfg)
        dynamic, dyn_len = samples_per_second(p, cfg, bucket=True, pad_to=None, steps=a.steps)
        fixed, fix_len = samples_per_second(p, cfg, bucket=False, pad_to=384, steps=a.steps)
    print(json.dumps({
        "benchmark": "padding", "pair": f"{a.teacher}>{a.student}", "batch_size": a.batch_size,
        "steps": a.steps, "dynamic_bucketed_samples_per_s": round(dynamic, 1),
        "pad_to_384_samples_per_s": round(fixed, 1), "speedup": round(dynamic / fixed, 2), "goal_speedup": 2,
        "mean_padded_len_dynamic": round(dyn_len, 1), "mean_padded_len_fixed": round(fix_len, 1),
        "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
