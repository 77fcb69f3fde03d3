"""A run that never left the label prior is redrawn (`train.restart_floor`): below the floor on validation the
student is drawn again from another seed, at most `train.restarts` times, the best draw on validation kept and
every draw recorded in metrics.json; a run above the floor, or with the guard off, is trained once."""
import json
from types import SimpleNamespace

import pytest
import torch

from dsgkd.cli import main
from dsgkd.config import RunConfig
from dsgkd.core.engine import Prepared
from dsgkd.pipeline import redraw
from dsgkd.pipeline.teachers import restart_seed


@pytest.fixture
def fake(monkeypatch):
    """A Prepared whose student is its seed, and a fit() that gives each seed the validation AUROC asked for."""
    monkeypatch.setattr(redraw, "fresh_student", lambda cfg, terms: (None, f"student {cfg.train.seed}"))

    def make(aurocs: dict[int, float | None], **train):
        cfg = RunConfig().with_overrides({"train.seed": 3, **{f"train.{k}": v for k, v in train.items()}})
        seen = []

        def fit(p, **kwargs):
            seen.append((p.cfg.train.seed, p.student, kwargs))
            auroc = aurocs[p.cfg.train.seed]
            return SimpleNamespace(metrics={} if auroc is None else {"val_auroc": auroc}, best_epoch=2, prepared=p)
        prepared = Prepared(cfg, splits=None, transfer_texts=[], student_tok=None, student="student 3")
        return prepared, fit, seen
    return make


R1, R2 = restart_seed(3, 1), restart_seed(3, 2)


def test_a_run_below_the_floor_is_redrawn_and_the_best_draw_kept(fake):
    prepared, fit, seen = fake({3: 0.52, R1: 0.58, R2: 0.55}, restart_floor=0.6)
    lines = []
    best, draws = redraw.fit_with_redraws(prepared, fit, log=lines.append, teacher_cache="cache")
    assert [(seed, student) for seed, student, _ in seen] == [(3, "student 3"), (R1, f"student {R1}"),
                                                             (R2, f"student {R2}")]
    assert all(kwargs == {"teacher_cache": "cache"} for _, _, kwargs in seen)  # every draw reads the same teachers
    assert best.prepared.cfg.train.seed == R1 and best.prepared.splits is prepared.splits
    assert draws == [{"seed": 3, "val_auroc": 0.52, "best_epoch": 2}, {"seed": R1, "val_auroc": 0.58, "best_epoch": 2},
                     {"seed": R2, "val_auroc": 0.55, "best_epoch": 2}]
    assert len(lines) == 2 and "below train.restart_floor 0.6" in lines[0] and f"seed {R1}" in lines[0]


@pytest.mark.parametrize("aurocs, train, n", [({3: 0.61}, {"restart_floor": 0.6}, 1),
                                              ({3: 0.5}, {}, 1),  # the guard is off by default
                                              ({3: None}, {"restart_floor": 0.6}, 1),  # one class in validation
                                              ({3: 0.5, R1: 0.55}, {"restart_floor": 0.6, "restarts": 1}, 2),
                                              ({3: 0.5, R1: 0.7}, {"restart_floor": 0.6}, 2)])
def test_a_run_is_trained_again_only_below_the_floor_and_within_the_restarts(fake, aurocs, train, n):
    prepared, fit, seen = fake(aurocs, **train)
    _, draws = redraw.fit_with_redraws(prepared, fit, log=lambda line: None)
    assert len(seen) == len(draws) == n


def test_a_redraw_changes_the_students_head_and_nothing_it_was_prepared_with(notes_csv):
    from dsgkd.pipeline.prepare import prepare
    from dsgkd.pipeline.resolve import resolve_run

    cfg = RunConfig.from_dict({"data": {"path": str(notes_csv), "text_col": "ER_DHX", "label_col": "LABEL"},
                               "distill": {"alpha": 0.0, "beta": 0.0, "gamma": 0.0}, "train": {"max_length": 64}})
    prepared = prepare(resolve_run(cfg))
    again = redraw.redrawn(prepared, R1)
    assert again.cfg.train.seed == R1 and prepared.cfg.train.seed == 0
    assert again.train_examples is prepared.train_examples and again.splits is prepared.splits
    heads = [dict(p.student.classifier.named_parameters()) for p in (prepared, again)]
    assert not torch.equal(heads[0]["out_proj.weight"], heads[1]["out_proj.weight"])
    body = [p.student.base_model.embeddings.word_embeddings.weight for p in (prepared, again)]
    assert torch.equal(*body)  # the pretrained student itself is not redrawn


def test_dsgkd_train_records_every_draw_and_keeps_the_best(notes_csv, tmp_path):
    """End to end with a floor no run reaches: three draws trained, recorded, and the saved student is the best
    draw on validation, with its own history."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL",
                 "--student", "xlmr-tiny", "--alpha", "0", "--epochs", "1", "--batch-size", "16",
                 "--max-length", "64", "--n-bootstrap", "20", "--restart-floor", "1", "--restarts", "2",
                 "--seed", "5", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    draws = metrics["draws"]
    assert [d["seed"] for d in draws] == [5, restart_seed(5, 1), restart_seed(5, 2)]
    best = max(draws, key=lambda d: d["val_auroc"])
    assert metrics["val"]["auroc"] == pytest.approx(best["val_auroc"])
    assert metrics["history"][-1]["best_val_auroc"] == pytest.approx(best["val_auroc"])
    assert metrics["seed"] == 5 and RunConfig.from_yaml(out / "config.yaml").train.restart_floor == 1
    card = (out / "student" / "README.md").read_text()
    assert "| redrawn (train.restart_floor) | 3 draws, validation AUROC " in card
    assert f"this student is the draw of seed {best['seed']} |" in card
