"""Training samples/s with dynamic padding + length buckets vs padding every note to 384 tokens.

Same notes, same DSG-KD step (live teacher, hidden + attention KD, backward, AdamW) through
`dsgkd.core.steps.Stepper`; only the batching differs. Prints JSON.

    python benchmarks/padding.py [--teacher kmbert-tiny --student xlmr-tiny --notes 800 --steps 20]
"""
import argparse
import json
import tempfile

import torch
from common import stand_in_config, timed_steps

from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="kmbert-tiny")
    ap.add_argument("--student", default="xlmr-tiny")
    ap.add_argument("--notes", type=int, default=800)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = stand_in_config(d, a.notes, a.teacher, a.student, **{"train.max_length": 384,
                                                                   "train.batch_size": a.batch_size})
        p = prepare(resolve_run(cfg))
        dynamic, dyn_len = timed_steps(p, cfg, steps=a.steps)
        fixed, fix_len = timed_steps(p, cfg, steps=a.steps, bucket=False, pad_to=384)
    print(json.dumps({
        "benchmark": "padding", "pair": f"{a.teacher}>{a.student}", "batch_size": a.batch_size,
        "steps": a.steps, "dynamic_bucketed_samples_per_s": round(dynamic, 1),
        "pad_to_384_samples_per_s": round(fixed, 1), "speedup": round(dynamic / fixed, 2), "goal_speedup": 2,
        "mean_padded_len_dynamic": round(dyn_len, 1), "mean_padded_len_fixed": round(fix_len, 1),
        "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
