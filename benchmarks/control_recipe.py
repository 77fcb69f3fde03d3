"""Can a recipe lift a table's KD-off control? KD-off fine-tunes of a table's student on its labelled training notes,
validation AUROC only (design seeds; the test split is never read), one JSON line per variant.

Each variant is `ENC,HEAD,SEED[,key=value...]`: encoder and head learning rates, a training seed, and any config
overrides (`train.epochs=12`, `train.batch_size=16`, `student.random_init=true`). The base is the table's own
recipe-grid config for the student (`OUT/recipe/<student>/lr.../seed_.../config.yaml`). `--width W` rebuilds the
student's stand-in W wide (and 2W in its feed-forward layer) before anything runs: a stronger general student.
`--adapt-steps N` first continues the student's MLM for N steps on the table's unlabelled notes (training and transfer
files: what a hospital has; batch 16, the run's max_length, `--adapt-lr`), task-adaptive pretraining, and trains the variants
from that encoder. `--mean-pool` makes an XLM-R student's classification head read the masked mean of the last layer
instead of its <s> state (a patch of this process's transformers, for the probe only).

    python benchmarks/control_recipe.py --table runs/tables/positive 1e-3,3e-3,1000 3e-3,1e-2,1000 \\
        1e-3,3e-3,1000,train.epochs=12 1e-3,3e-3,1000,student.random_init=true [--width 128] \\
        [--adapt-steps 600 --adapt-lr 5e-4] [--mean-pool]
"""
import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers
import yaml

from dsgkd.config import RunConfig
from dsgkd.core.engine import fit
from dsgkd.models import tiny
from dsgkd.models.tiny import ensure_tiny, split_ref
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teachers import prepare_run


def variant(base: RunConfig, spec: str) -> RunConfig:
    enc, head, seed, *rest = spec.split(",")
    over = {"train.lr_encoder": float(enc), "train.lr_head": float(head), "train.seed": int(seed)}
    for item in rest:
        key, value = item.split("=", 1)
        over[key] = yaml.safe_load(value)
    return base.with_overrides(over)


def adapt(table: Path, cfg: RunConfig, steps: int, lr: float, out: Path) -> dict:
    """Task-adaptive MLM of the student stand-in on the table's unlabelled notes, cut where the student's training
    cuts them; saves the encoder to `out`."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

    torch.manual_seed(0)
    src = ensure_tiny(cfg.student.ref)
    tokenizer, mlm = AutoTokenizer.from_pretrained(src), AutoModelForMaskedLM.from_pretrained(src)
    texts = [t for f in ("train.csv", "transfer.csv") for t in pd.read_csv(table / "data" / f)[cfg.data.text_col]]
    ids = [tokenizer(t, truncation=True, max_length=cfg.train.max_length)["input_ids"] for t in texts]
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    opt = torch.optim.AdamW(mlm.parameters(), lr=lr, weight_decay=0.01)
    sched = transformers.get_linear_schedule_with_warmup(opt, steps // 10, steps)
    mlm.train()
    losses = []
    for _ in range(steps):
        loss = mlm(**collate([{"input_ids": ids[i]} for i in torch.randint(len(ids), (16,))])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    mlm.base_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"adapt_notes": len(ids), "mlm_loss_first_100": round(float(np.mean(losses[:100])), 3),
            "mlm_loss_last_100": round(float(np.mean(losses[-100:])), 3)}


def mean_pool_xlmr_head() -> None:
    """Patch XLM-R's classification head to pool the masked mean of the last layer (the probe's --mean-pool)."""
    import threading

    import transformers.models.xlm_roberta.modeling_xlm_roberta as xlmr

    mask_of = threading.local()
    forward = xlmr.XLMRobertaForSequenceClassification.forward

    def model_forward(self, input_ids=None, attention_mask=None, **kw):
        mask_of.value = attention_mask
        return forward(self, input_ids=input_ids, attention_mask=attention_mask, **kw)

    def head_forward(self, features, **kw):
        mask = mask_of.value.unsqueeze(-1).to(features.dtype)
        x = self.dropout((features * mask).sum(1) / mask.sum(1).clamp(min=1))
        return self.out_proj(self.dropout(torch.tanh(self.dense(x))))

    xlmr.XLMRobertaForSequenceClassification.forward = model_forward
    xlmr.XLMRobertaClassificationHead.forward = head_forward


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", type=Path, default=Path("runs/tables/positive"))
    ap.add_argument("--student", default="xlmr-tiny", help="the stand-in whose recipe-grid config is the base")
    ap.add_argument("--width", type=int, help="rebuild the student stand-in this wide")
    ap.add_argument("--adapt-steps", type=int, default=0, help="task-adaptive MLM steps before the variants")
    ap.add_argument("--adapt-lr", type=float, default=5e-4)
    ap.add_argument("--mean-pool", action="store_true", help="an XLM-R student's head pools the mean, not <s>")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    base_path = next(a.table.glob(f"recipe/{a.student}*/lr*/seed_*/config.yaml"))
    base = RunConfig.from_yaml(base_path)
    if a.width:
        name = split_ref(base.student.ref)[0]
        tiny.TINY_SPECS[name] = dataclasses.replace(tiny.TINY_SPECS[name], hidden=a.width, intermediate=2 * a.width)
    extra = {"width": a.width, "adapt_steps": a.adapt_steps, "mean_pool": a.mean_pool}
    if a.mean_pool:
        mean_pool_xlmr_head()
    with tempfile.TemporaryDirectory(prefix="dsgkd-adapted-") as adapted:
        if a.adapt_steps:
            extra.update(adapt(a.table, base, a.adapt_steps, a.adapt_lr, Path(adapted)),
                         adapt_lr=a.adapt_lr)
            base = base.with_overrides({"student.ref": adapted})
        for spec in a.variants:
            t0 = time.time()
            result = fit(prepare_run(resolve_run(variant(base, spec))))
            curve = [round(h["val_auroc"], 3) for h in result.history]
            print(json.dumps({"benchmark": "control_recipe", "base": str(base_path), **extra, "variant": spec,
                              "best_val_auroc": max(curve), "val_auroc_per_epoch": curve,
                              "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
