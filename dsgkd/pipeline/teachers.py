"""The teacher a run needs that does not exist yet: a teacher fine-tuned on the task (for logit KD). It is made
once, keyed by content, and shared by every run and trial that names the same teacher on the same data (so is
the teacher-signal cache: `dsgkd.pipeline.teacher_cache`); `prepare_run` is the entry point every trainer calls.
"""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

from dsgkd.config import RunConfig
from dsgkd.core.engine import Prepared, fit
from dsgkd.core.terms import weighted_sources
from dsgkd.data.emr import Splits, load_splits
from dsgkd.models.presets import resolve
from dsgkd.models.shape import model_shape
from dsgkd.models.tiny import cache_root
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import ResolvedRun
from dsgkd.storage import content_key, staged_dir

FINETUNE_RECORD = "finetune.json"  # in a fine-tuned teacher's directory: every draw, seed and validation AUROC


def teacher_identity(cfg: RunConfig, source: str) -> str:
    """What makes two teachers the same: source (a stand-in's dir carries its content key), how it was
    initialised, for the fine-tuned copy the whole fine-tuning recipe, and the seed when it draws the teacher's
    weights or its fine-tuning (a pretrained frozen teacher is the same on every seed, so re-runs on other
    seeds share its cache). `source`: "pretrained" (the teacher as loaded) or "finetuned"."""
    r = resolve(cfg.teacher.ref)
    tuned = source == "finetuned"
    # a fine-tune never smooths its labels (`teacher_finetune_config`): a constant is no part of who it is, and
    # leaving it out keeps the fine-tunes cached before the field existed
    train = teacher_finetune_config(cfg).train.model_dump(mode="json", exclude={"label_smoothing"})
    recipe = [train, cfg.teacher.finetune_floor,
              cfg.teacher.finetune_restarts] if tuned else None
    seeded = cfg.teacher.random_init or tuned
    return json.dumps([r.source, cfg.teacher.random_init, tuned, recipe, cfg.train.seed if seeded else None])


def teacher_seeded(cfg: RunConfig) -> bool:
    """Whether `train.seed` changes the teacher: it draws a random-init teacher's weights and a fine-tuning."""
    return cfg.teacher.random_init or cfg.teacher.finetune


def teacher_finetune_config(cfg: RunConfig) -> RunConfig:
    """The teacher's own fine-tuning run: its learning rates, not the student's, so a search over student
    LRs shares one fine-tuned teacher instead of making one per value; the first-token head it was published with,
    whatever the student's pooling. Every value comes from a validated config, so the copy is not validated again."""
    t = cfg.teacher
    return cfg.model_copy(update={
        "student": cfg.student.model_copy(update={"ref": t.ref, "random_init": t.random_init, "pooling": "cls"}),
        "teacher": t.model_copy(update={"finetune": False, "random_init": False}),
        "train": cfg.train.model_copy(update={"epochs": t.finetune_epochs, "lr_encoder": t.finetune_lr_encoder,
                                             "lr_head": t.finetune_lr_head, "patience": max(cfg.train.patience, 3),
                                             "label_smoothing": 0.0}),
        "distill": cfg.distill.control(), "data": cfg.data.model_copy(update={"transfer_path": None})})


def restart_seed(seed: int, draw: int) -> int:
    """The seed of a collapsed fine-tune's `draw`-th redo: far from every reported and design seed."""
    return (seed + 1) * 100_003 + draw


def finetuned_teacher_dir(cfg: RunConfig, splits: Splits) -> Path:
    """Fine-tuned once per (teacher, init, data, seed, recipe) by the same loop as any student, and cached:
    every trial of a search and every row of a table that names the same teacher reuses it.

    A collapsed fine-tune (best validation AUROC below `teacher.finetune_floor`) would hand logit KD the labels'
    prior instead of a teacher, so it is redone from other seeded draws (`restart_seed`), at most
    `teacher.finetune_restarts` times, and the best on validation kept; FINETUNE_RECORD lists every draw."""
    # train and validation only: a new test split (a table's next design) reuses the fine-tune, which never reads it
    key = content_key([teacher_identity(cfg, "finetuned"), splits.fit_fingerprint])
    final = cache_root() / "teachers" / f"{Path(cfg.teacher.ref).name}-{key}"
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # set-up tasks of several cache groups (and trials, on a node without a set-up) ask for the same teacher at
    # once: the first fine-tunes it, the others wait and reuse it rather than fine-tune it again
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "config.json").is_file():
            _finetune(cfg, splits, final)
    return final


def _finetune(cfg: RunConfig, splits: Splits, final: Path) -> None:
    tuned, shape, t = teacher_finetune_config(cfg), model_shape(cfg.teacher.ref), cfg.teacher
    best, draws = None, []
    for draw in range(t.finetune_restarts + 1):
        seed = cfg.train.seed if draw == 0 else restart_seed(cfg.train.seed, draw)
        run = tuned.model_copy(update={"train": tuned.train.model_copy(update={"seed": seed})})
        result = fit(prepare(ResolvedRun(run, shape), splits=splits))
        auroc = result.metrics.get("val_auroc")
        draws.append({"seed": seed, "val_auroc": auroc, "best_epoch": result.best_epoch})
        if best is None or (auroc is not None and auroc > best.metrics.get("val_auroc", -1)):
            best = result
        if auroc is None or auroc >= t.finetune_floor:
            break
    with staged_dir(final, exists="keep") as stage:
        best.model.save_pretrained(stage)
        best.tokenizer.save_pretrained(stage)
        (stage / FINETUNE_RECORD).write_text(json.dumps({"floor": t.finetune_floor, "draws": draws}, indent=1))


def finetune_record(teacher_dir: Path) -> dict | None:
    """What `finetuned_teacher_dir` recorded of a teacher's draws (None for a teacher made before the guard)."""
    path = Path(teacher_dir) / FINETUNE_RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def prepare_run(run: ResolvedRun, *, splits: Splits | None = None, teacher_weights: bool = True,
                note_store: Path | None = None) -> Prepared:
    """`prepare`, after fine-tuning the teacher when the config asks for one (and it is not cached yet); the
    run was resolved at the edge, so a bad map or length never waits for a fine-tuning."""
    cfg = run.cfg
    splits = splits or load_splits(cfg.data)
    teacher_dir = None
    if teacher_weights and "finetuned" in weighted_sources(cfg.distill):
        teacher_dir = finetuned_teacher_dir(cfg, splits)
    return prepare(run, splits=splits, teacher_weights=teacher_weights, teacher_dir=teacher_dir,
                   note_store=note_store)

