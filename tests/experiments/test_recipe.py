"""The recipe grid chooses a student's learning rates on the batches its rows train on."""
import json

from dsgkd.config import RunConfig
from dsgkd.experiments import recipe, table_render


def test_a_students_grid_batches_the_transfer_notes_its_rows_batch_and_a_teachers_does_not(tmp_path):
    base = RunConfig.from_dict({"data": {"path": "train.csv", "transfer_path": "transfer.csv"},
                                "distill": {"alpha": 0.5, "gamma": 1.0}, "teacher": {"finetune": True}})
    student_jobs = recipe.grid_jobs(base, "xlmr-tiny", tmp_path, student=True)
    teacher_jobs = recipe.grid_jobs(base, "kmbert-tiny", tmp_path)
    assert {cfg.data.transfer_path for _, cfg, _ in student_jobs} == {"transfer.csv"}
    assert {cfg.data.transfer_path for _, cfg, _ in teacher_jobs} == {None}
    for _, cfg, _ in student_jobs + teacher_jobs:  # KD off, nothing fine-tuned: a cell is the control's recipe alone
        assert not cfg.distill.kd_on and not cfg.teacher.finetune
        assert cfg.data.path == "train.csv"
    for _, cfg, out in student_jobs + teacher_jobs:
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"val": {"auroc": 0.7}}))
    assert recipe.choose("xlmr-tiny", tmp_path, base, student=True)["transfer_batched"] is True
    assert recipe.choose("kmbert-tiny", tmp_path, base)["transfer_batched"] is False


def test_the_choice_records_how_often_each_cell_was_redrawn(tmp_path):
    """A cell whose seeds stalled under the floor looks as good as its redraws: the record counts the draws."""
    base = RunConfig.from_dict({"data": {"path": "train.csv"}})
    for k, (_, cfg, out) in enumerate(recipe.grid_jobs(base, "kobert-tiny", tmp_path)):
        out.mkdir(parents=True)
        draws = [{"seed": s, "val_auroc": 0.5, "best_epoch": 1} for s in range(1 + k % 3)]
        (out / "metrics.json").write_text(json.dumps({"val": {"auroc": 0.6 + 0.01 * k}, "draws": draws}))
    chosen = recipe.choose("kobert-tiny", tmp_path, base)
    assert chosen["draws"] == {"0.0001/0.001": [1, 2], "0.0003/0.003": [3, 1], "0.001/0.003": [2, 3],
                               "0.002/0.006": [1, 2]}
    assert (chosen["lr_encoder"], chosen["lr_head"]) == (2e-3, 6e-3)
    line = table_render._chosen_lrs({"kobert-tiny": chosen})
    assert ("0.0001/0.001 0.605 after 1 redraw, 0.0003/0.003 0.625 after 2 redraws, 0.001/0.003 0.645 after 3 "
            "redraws, 0.002/0.006 0.665 after 1 redraw)") in line
