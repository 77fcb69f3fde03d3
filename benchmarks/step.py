"""Samples/s of a whole DSG-KD training step vs the paper code's pipeline, on the same models and notes.

dsgkd: length-bucketed batches with dynamic padding, the teacher signal read from the ragged cache, the
vectorised KD losses (`Distiller` + `Stepper`, exactly what `dsgkd train` runs). The paper's pipeline
(JoSangYeon/DSG-KD): every batch padded to 384 tokens, the teacher run live on every step, and its loss
loop (utils.py `MLKD_Loss`): per sample and word one slice across all layers, mean over the word's
tokens, concatenated, one MSE for hidden states; the same for the word's attention rows over all key
positions (all heads); alpha 0.6, beta 0.2. Both train the same student init on the same notes, each
timed over its own steps after two warm-up steps (`--paper-steps` fewer: the paper's pipeline runs at
about one sample a second here). Shares of dsgkd's step, each 1 - (samples/s with it) / (samples/s without):
`kd_terms_share` the KD terms alone (pooling, term grids, losses), `distillation_share` all that KD asks of a
step (also reading the cached signal and the student's hidden states and attentions). Prints JSON.

    python benchmarks/step.py [--steps 30 --paper-steps 5 --batch 16 --notes 400]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import stand_in_config, timed_steps

from dsgkd.config import RunConfig
from dsgkd.core.features import collate, make_batches
from dsgkd.core.layer_maps import attention_index, attention_pairs
from dsgkd.models.load import encoder_width
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teacher_cache import build_cache

PAPER_LENGTH = 384
WARMUP = 2


def paper_loss(t_out, s_out, batch, pairs, proj, alpha: float, beta: float) -> torch.Tensor:
    """MLKD_Loss of the paper's code, on teacher/student outputs over the same term spans. The paper pairs
    equal-depth, equal-width models index to index; a stand-in pair differs in both, so the slice runs across
    the mapped layers and the student's vectors go through the same learned projection dsgkd uses."""
    t_h = torch.stack(t_out.hidden_states)[[t for t, _ in pairs]]
    s_h = proj(torch.stack(s_out.hidden_states)[[s for _, s in pairs]])
    attn = attention_pairs(pairs)
    t_a = torch.stack(t_out.attentions)[[attention_index(t) for t, _ in attn]]
    s_a = torch.stack(s_out.attentions)[[attention_index(s) for _, s in attn]]
    pool, width, length = torch.nn.AdaptiveAvgPool2d((1, None)), t_h.shape[-1], t_a.shape[-1]
    t_hid, s_hid, t_att, s_att = [], [], [], []
    for b in range(batch["term_mask"].shape[0]):
        for w in range(batch["term_mask"].shape[1]):
            if not batch["term_mask"][b, w]:
                continue
            ts, te = batch["t_spans"][b, w].tolist()
            ss, se = batch["s_spans"][b, w].tolist()
            t_hid.append(pool(t_h[:, b, ts:te, :]).view(-1, width))
            s_hid.append(pool(s_h[:, b, ss:se, :]).view(-1, width))
            t_att.append(pool(t_a[:, b, :, ts:te, :]).view(-1, length))
            s_att.append(pool(s_a[:, b, :, ss:se, :]).view(-1, length))
    ce = F.cross_entropy(s_out.logits, batch["labels"])
    if not t_hid:
        return ce
    return ce + alpha * F.mse_loss(torch.cat(s_hid), torch.cat(t_hid)) + beta * F.mse_loss(torch.cat(s_att),
                                                                                            torch.cat(t_att))


def paper_steps(cfg: RunConfig, p, n_steps: int) -> float:
    torch.manual_seed(0)
    student, teacher = p.student, p.teachers["pretrained"].eval().requires_grad_(False)
    proj = torch.nn.Linear(encoder_width(student), encoder_width(teacher))
    params = [*student.parameters(), *proj.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr_encoder)
    batches = make_batches([0] * len(p.train_examples), cfg.train.batch_size, shuffle=True, seed=0,
                           bucket=False)[:n_steps + WARMUP]
    student.train()
    for i, idx in enumerate(batches):
        if i == WARMUP:
            t0 = time.perf_counter()  # the first steps warm up allocators and kernels
        batch = collate([p.train_examples[j] for j in idx], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id,
                        pad_to=PAPER_LENGTH)
        with torch.no_grad():
            t_out = teacher(input_ids=batch["t_ids"], attention_mask=batch["t_mask"], output_hidden_states=True,
                            output_attentions=True)
        s_out = student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"], output_hidden_states=True,
                        output_attentions=True)
        loss = paper_loss(t_out, s_out, batch, p.layer_pairs, proj, cfg.distill.alpha, cfg.distill.beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return sum(len(b) for b in batches[WARMUP:]) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--paper-steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--notes", type=int, default=400)
    ap.add_argument("--teacher", default="kmbert-tiny")
    ap.add_argument("--student", default="xlmr-tiny")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = stand_in_config(tmp, a.notes, a.teacher, a.student, **{"train.max_length": PAPER_LENGTH,
                                                                     "train.batch_size": a.batch})
        p = prepare(resolve_run(cfg))
        cache = build_cache(cfg, p.teacher_layers(), Path(tmp) / "cache")
        ours, _ = timed_steps(p, cfg, steps=a.steps, teacher_cache=cache, warmup=WARMUP)
        no_terms, _ = timed_steps(prepare(resolve_run(cfg)), cfg, steps=a.steps, teacher_cache=cache, warmup=WARMUP,
                                  kd_terms=False)
        kd_off = cfg.with_overrides({"distill.alpha": 0.0, "distill.beta": 0.0})
        no_kd, _ = timed_steps(prepare(resolve_run(kd_off)), kd_off, steps=a.steps, warmup=WARMUP)
        paper = paper_steps(cfg, prepare(resolve_run(cfg)), a.paper_steps)
    print(json.dumps({
        "benchmark": "step", "pair": f"{a.teacher}>{a.student}", "batch_size": a.batch, "steps": a.steps,
        "paper_steps": a.paper_steps,
        "dsgkd_samples_per_s": round(ours, 1), "paper_pipeline_samples_per_s": round(paper, 1),
        "speedup": round(ours / paper, 2), "goal_speedup": 10,
        "dsgkd_without_kd_terms_samples_per_s": round(no_terms, 1), "dsgkd_kd_off_samples_per_s": round(no_kd, 1),
        "kd_terms_share": round(1 - ours / no_terms, 3), "distillation_share": round(1 - ours / no_kd, 3),
        "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
