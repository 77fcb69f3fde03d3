"""What several benchmarks share: a synthetic stand-in run's config, the timed dsgkd training step, and the
process's resident memory. Imported by the scripts beside it (`python benchmarks/x.py` puts this folder on
the path)."""
import time
from pathlib import Path

import torch
from transformers import get_constant_schedule

from dsgkd.config import RunConfig
from dsgkd.core.distiller import Distiller
from dsgkd.core.engine import make_teacher_signal
from dsgkd.core.features import collate, make_batches, note_lengths
from dsgkd.core.steps import Stepper, make_optimizer, resolve_precision
from dsgkd.data.synthetic import generate_notes, write_table
from dsgkd.models.load import encoder_width


def stand_in_config(folder: Path, n_notes: int, teacher: str, student: str, **overrides) -> RunConfig:
    """`n_notes` synthetic labelled notes written to FOLDER/notes.csv and a run on them, layer map uniform."""
    notes = Path(folder) / "notes.csv"
    write_table(generate_notes(n_notes, seed=0), notes)
    return RunConfig().with_overrides({
        "data.path": str(notes), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "teacher.ref": teacher,
        "student.ref": student, "distill.layer_map": "uniform", **overrides})


def timed_steps(p, cfg: RunConfig, *, steps: int, teacher_cache=None, bucket: bool = True,
                pad_to: int | None = None, warmup: int = 2, kd_terms: bool = True) -> tuple[float, float]:
    """Samples/s and mean padded student length of `steps` dsgkd training steps (`Distiller` + `Stepper`,
    what `dsgkd train` runs) after `warmup` untimed ones; the teacher live unless a cache is given.
    `kd_terms=False` keeps everything distillation asks of a step (the teacher signal, the student's hidden
    states and attentions) but skips the KD terms themselves (pooling, grids, losses), to time them apart."""
    torch.manual_seed(0)
    teacher_width = encoder_width(p.teacher_config) if p.teacher_config is not None else None
    model = Distiller(p.student, cfg.distill, p.layer_pairs, teacher_width)
    if not kd_terms:  # the terms still ask the student and teacher for their outputs, and compute nothing
        for term, _, _ in model.terms:
            term.compute = lambda inputs: None
    opt = make_optimizer(model, cfg)
    sched = get_constant_schedule(opt)
    signal = make_teacher_signal(p, teacher_cache, torch.device("cpu"))
    t_pad = p.teacher_tok.pad_token_id if signal is not None else None
    device = torch.device("cpu")
    stepper = Stepper(model.train(), signal, opt, sched, grad_clip=1.0, device=device,
                      precision=resolve_precision("auto", device))
    lengths = note_lengths(p.train_examples)
    batches = make_batches(lengths, cfg.train.batch_size, shuffle=True, seed=0, bucket=bucket)[:steps + warmup]
    tokens = n = 0
    elapsed = 0.0
    for k, idx in enumerate(batches):
        batch = collate([p.train_examples[i] for i in idx], p.student_tok.pad_token_id, t_pad, pad_to=pad_to)
        t0 = time.perf_counter()
        stepper.step([batch])
        if k >= warmup:  # the first steps warm up allocators and kernels
            elapsed += time.perf_counter() - t0
            n += len(idx)
            tokens += batch["s_ids"].numel()
    return n / elapsed, tokens / max(n, 1)


def resident_mb() -> dict[str, float]:
    """VmRSS and its private (RssAnon) and file-backed (RssFile) parts: memory-mapped cache pages are
    file-backed, shared by every process on the node and dropped by the kernel under pressure."""
    status = Path("/proc/self/status").read_text()
    return {k: round(int(status.split(f"{k}:")[1].split()[0]) / 1024, 1) for k in ("VmRSS", "RssAnon", "RssFile")}
