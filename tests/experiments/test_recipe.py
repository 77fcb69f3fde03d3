"""The recipe grid chooses a student's learning rates on the batches its rows train on."""
import json

from dsgkd.config import RunConfig
from dsgkd.experiments import recipe


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
