"""A collapsed teacher fine-tune is redrawn: below `teacher.finetune_floor` on validation the fine-tune is redone
from another seeded draw, at most `finetune_restarts` times, the best on validation is kept and every draw is
recorded; a healthy first draw is kept alone, and the guard's settings are part of the teacher's identity."""
import json
from types import SimpleNamespace

import pytest

from dsgkd.config import RunConfig
from dsgkd.pipeline import teachers


class _Model:
    def __init__(self, seed):
        self.seed = seed

    def save_pretrained(self, d):
        (d / "config.json").write_text(json.dumps({"seed": self.seed}))


@pytest.fixture
def fake_fits(tmp_path, monkeypatch):
    """fit() returns the validation AUROC this table gives the draw's seed."""
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(teachers, "model_shape", lambda ref: None)
    monkeypatch.setattr(teachers, "prepare", lambda run, splits: run)
    seen = []

    def set_aurocs(aurocs: dict[int, float]):
        def fit(run):
            seed = run.cfg.train.seed
            seen.append(seed)
            return SimpleNamespace(metrics={"val_auroc": aurocs[seed]}, best_epoch=1, model=_Model(seed),
                                   tokenizer=SimpleNamespace(save_pretrained=lambda d: None))
        monkeypatch.setattr(teachers, "fit", fit)
        return seen
    return set_aurocs


SPLITS = SimpleNamespace(fingerprint="notes", fit_fingerprint="fit notes")


def test_a_collapsed_fine_tune_is_redrawn_and_the_best_draw_kept(fake_fits):
    cfg = RunConfig().with_overrides({"teacher.finetune": True, "train.seed": 3})
    r1, r2 = teachers.restart_seed(3, 1), teachers.restart_seed(3, 2)
    seen = fake_fits({3: 0.52, r1: 0.58, r2: 0.55})
    out = teachers.finetuned_teacher_dir(cfg, SPLITS)
    assert seen == [3, r1, r2]  # every draw stayed below 0.6: all three tried
    assert json.loads((out / "config.json").read_text())["seed"] == r1  # the best on validation
    record = teachers.finetune_record(out)
    assert record["floor"] == 0.6 and [d["val_auroc"] for d in record["draws"]] == [0.52, 0.58, 0.55]
    assert teachers.finetuned_teacher_dir(cfg, SPLITS) == out and len(seen) == 3  # cached: no fourth fit


def test_a_healthy_draw_is_kept_alone_and_the_guard_is_part_of_the_identity(fake_fits):
    cfg = RunConfig().with_overrides({"teacher.finetune": True, "train.seed": 0})
    seen = fake_fits({0: 0.61, teachers.restart_seed(0, 1): 0.9})
    first = teachers.finetuned_teacher_dir(cfg, SPLITS)
    assert seen == [0] and len(teachers.finetune_record(first)["draws"]) == 1
    off = teachers.finetuned_teacher_dir(cfg.with_overrides({"teacher.finetune_floor": 0.0}), SPLITS)
    assert off != first and seen == [0, 0]  # a different guard is a different teacher
    assert teachers.restart_seed(0, 1) not in range(0, 2000)  # far from the reported and design seeds


def test_callers_at_once_fine_tune_the_teacher_once(fake_fits, monkeypatch):
    """Set-up tasks of two cache groups (two term selectors) asking for one teacher at the same time: one fits,
    the other waits on the lock and reuses its directory."""
    import threading
    import time

    cfg = RunConfig().with_overrides({"teacher.finetune": True, "train.seed": 5})
    seen = fake_fits({5: 0.8})
    fit = teachers.fit
    monkeypatch.setattr(teachers, "fit", lambda run: time.sleep(0.3) or fit(run))  # both callers in flight
    out = []
    callers = [threading.Thread(target=lambda: out.append(teachers.finetuned_teacher_dir(cfg, SPLITS)))
               for _ in range(2)]
    for c in callers:
        c.start()
    for c in callers:
        c.join()
    assert seen == [5] and len(out) == 2 and out[0] == out[1]


def test_the_students_label_smoothing_is_no_part_of_the_teachers_fine_tune():
    """A smoothed student reads the same fine-tuned teacher as an unsmoothed one (the teacher is fine-tuned on
    hard labels), and the field is absent from its identity, so fine-tunes cached before it existed keep their keys."""
    cfg = RunConfig().with_overrides({"teacher.ref": "kmbert-tiny", "teacher.finetune": True, "train.seed": 3})
    smoothed = cfg.with_overrides({"train.label_smoothing": 0.2})
    assert teachers.teacher_finetune_config(smoothed).train.label_smoothing == 0.0
    assert teachers.teacher_identity(smoothed, "finetuned") == teachers.teacher_identity(cfg, "finetuned")
    assert "label_smoothing" not in teachers.teacher_identity(cfg, "finetuned")
