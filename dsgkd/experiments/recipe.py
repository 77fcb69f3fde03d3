"""The training recipe of a table, chosen per model family on validation before anything is searched.

A fixed encoder learning rate chosen for one student on another world collapsed seeds of students and teachers
alike (docs/levers.md: lr 1e-3 in the 2026-12-04 table). So each model the table trains (a student, or a teacher
to be fine-tuned) first gets KD-off fine-tunes on the notes its rows train on at every pair of `LR_GRID`, on
design seeds that no reported row uses; the pair with the best mean validation AUROC (the worst
seed breaking ties, since a collapsed seed is what this guards against) becomes that model's recipe, for every
row alike, the KD-off control included. Nothing reads the test split. What was tried and chosen goes into
results.json.

Those notes are a student's rows' notes. Where the rows mix the unlabelled transfer notes into their batches
(`train.transfer_batching: mixed`), the KD-off control takes them too (they add no cross-entropy, so a row and its
control take the same steps over the same batches): an epoch of 1.5 times as many steps with a third fewer labels
in each, and a recipe chosen on labelled-only batches was not the recipe the control trained under (docs/levers.md,
"The grid chose the control's recipe on other batches"). So the grid's cells batch them too; `alongside`, a KD-off
cell never sees them and is the plain fine-tune the control is. A teacher is fine-tuned on the labelled notes
alone, as its rows fine-tune it (`pipeline.teachers`).

A model the table trains as a student is also tried with each head pooling (`student.pooling`): reading the
first token, six of twelve KD-off xlmr-tiny seeds never left the label prior on the positive world while every
KD row did, so the control measured optimisation, not a recipe as strong as the method's (docs/levers.md). A
teacher is fine-tuned with the first-token head it was published with.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dsgkd.config import DataConfig, RunConfig

# (encoder, head) learning rates; 1e-4 and 3e-4 for the encoder are what the review asked to have in the grid, 2e-3
# what lifted the mean-pooled xlmr-tiny control to the n-gram reference on validation (docs/levers.md)
LR_GRID = ((1e-4, 1e-3), (3e-4, 3e-3), (1e-3, 3e-3), (2e-3, 6e-3))
DESIGN_SEEDS = (1000, 1001)  # never a reported row's seed
STUDENT_POOLINGS = ("cls", "mean")


def _cells(student: bool) -> list[tuple[float, float, str]]:
    return [(enc, head, pooling) for pooling in (STUDENT_POOLINGS if student else ("cls",)) for enc, head in LR_GRID]


def _cell_dir(out: Path, ref: str, enc: float, head: float, pooling: str) -> Path:
    return out / _dirname(ref) / (f"lr{enc:g}_{head:g}" + ("" if pooling == "cls" else f"_{pooling}"))


def _key(enc: float, head: float, pooling: str) -> str:
    return f"{enc:g}/{head:g}" + ("" if pooling == "cls" else f" {pooling}")


def grid_jobs(base: RunConfig, ref: str, out: Path, *, student: bool = False) -> list[tuple[str, RunConfig, Path]]:
    """KD-off fine-tunes of `ref`, one per (learning rates, head pooling where `ref` is a student, design seed), on
    the notes `grid_data` gives it."""
    plain = base.model_copy(update={"distill": base.distill.control(), "data": grid_data(base, student),
                                    "teacher": base.teacher.model_copy(update={"finetune": False})})
    return [("student", plain.with_overrides({"student.ref": ref, "train.lr_encoder": enc, "train.lr_head": head,
                                              "student.pooling": pooling, "train.seed": seed}),
             _cell_dir(out, ref, enc, head, pooling) / f"seed_{seed}")
            for enc, head, pooling in _cells(student) for seed in DESIGN_SEEDS]


def grid_data(base: RunConfig, student: bool) -> DataConfig:
    """The notes a grid cell trains on: a student's, its rows' (the transfer notes named, so a KD-off cell batches
    them as its control does: mixed in, or not at all `alongside`); a teacher's, the labelled notes alone."""
    return base.data if student else base.data.model_copy(update={"transfer_path": None})


def choose(ref: str, out: Path, base: RunConfig, *, student: bool = False) -> dict:
    """The grid's validation AUROCs for `ref` (after its jobs ran) and the recipe chosen. `draws` counts each
    design seed's draws under `train.restart_floor`: a cell that needed redraws looks as good as its best draw (the
    one kept), so the record says how often it stalled."""
    tried, draws, cells = {}, {}, {}
    for enc, head, pooling in _cells(student):
        runs = [_cell_dir(out, ref, enc, head, pooling) / f"seed_{s}" / "metrics.json" for s in DESIGN_SEEDS]
        key = _key(enc, head, pooling)
        metrics = [json.loads(r.read_text(encoding="utf-8")) for r in runs]
        tried[key] = [m["val"]["auroc"] for m in metrics]
        draws[key] = [len(m.get("draws") or [None]) for m in metrics]
        cells[key] = (enc, head, pooling)
    enc, head, pooling = cells[max(tried, key=lambda k: (np.mean(tried[k]), min(tried[k])))]
    return {"lr_encoder": enc, "lr_head": head, "pooling": pooling, "val_auroc": tried,
            "draws": draws, "design_seeds": list(DESIGN_SEEDS),
            "transfer_batched": grid_data(base, student).transfer_path is not None
            and base.train.transfer_batching == "mixed"}


def with_recipes(base: RunConfig, teacher: str, student: str | None, recipes: dict) -> RunConfig:
    """`base` for this teacher (fine-tuned at its own chosen learning rates) and student (trained at its own, with
    its chosen head pooling)."""
    t = recipes[teacher]
    over = {"teacher.ref": teacher, "teacher.finetune_lr_encoder": t["lr_encoder"],
            "teacher.finetune_lr_head": t["lr_head"]}
    if student is not None:
        s = recipes[student]
        over.update({"student.ref": student, "train.lr_encoder": s["lr_encoder"], "train.lr_head": s["lr_head"],
                     "student.pooling": s.get("pooling", "cls")})
    return base.with_overrides(over)


def _dirname(ref: str) -> str:
    return ref.replace("/", "_").replace(":", "-")
