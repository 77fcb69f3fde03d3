"""Hidden-state KD's task view: a probe fitted on the labelled notes' term vectors, distilled as one score per word."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dsgkd.config import RunConfig
from dsgkd.core.distiller import Distiller
from dsgkd.core.features import collate
from dsgkd.core.losses.hidden import hidden_kd_from_pooled
from dsgkd.core.losses.pooling import pool_layers
from dsgkd.core.teacher.signal import TeacherOut
from dsgkd.core.teacher.task_view import TaskViewReader, fit_task_probe
from dsgkd.models.load import encoder_width
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run

WIDTH, TERMS = 32, 3


class TableReader:
    """A teacher whose word vectors carry the note's label along one small direction under large noise in every
    other coordinate (what a real teacher's severity looks like next to token identity)."""

    layers, attn_layers = [1, 2], []

    def __init__(self, labels: np.ndarray, seed: int = 0):
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((2, len(labels), TERMS, WIDTH)) * 5.0
        noise[..., 0] = (2 * labels[None, :, None] - 1) * 1.0 + rng.standard_normal((2, len(labels), TERMS)) * 0.5
        self.table = torch.from_numpy(noise.astype(np.float32))

    def __call__(self, batch: dict, split: str) -> TeacherOut:
        return TeacherOut(self.table[:, batch["idx"]], None, None, self.layers, self.attn_layers)


def examples(labels) -> list[dict]:
    return [{"idx": i, "label": int(y), "n_terms": TERMS} for i, y in enumerate(labels)]


def test_the_probe_reads_the_label_direction_out_of_the_noise():
    labels = np.random.default_rng(1).integers(0, 2, 600)
    labels[400:] = -1  # unlabeled transfer notes: the probe never sees them
    reader = TableReader(np.where(labels < 0, np.random.default_rng(2).integers(0, 2, 600), labels))
    probe = fit_task_probe(reader, examples(labels), None, None, 64, "cpu")
    view = TaskViewReader(reader, probe)
    batch = collate(examples(labels)[400:], None, None)
    out = view(batch, "train")
    assert out.pooled.shape == (2, 200, TERMS, 1) and out.layers == [1, 2]
    truth = reader.table[0, 400:, :, 0].flatten() > 0  # the transfer notes' hidden labels, read off the table
    for layer in range(2):
        assert roc_auc_score(truth.numpy(), out.pooled[layer, ..., 0].flatten().numpy()) > 0.95
    seen = view(collate(examples(labels)[:400], None, None), "train").pooled
    assert abs(float(seen.mean())) < 1e-3 and abs(float(seen.std()) - 1) < 1e-2  # standardised on training words
    # raw coordinates carry almost none of it: the first principal direction is noise
    raw = reader.table[0, 400:].reshape(-1, WIDTH)
    top = torch.linalg.svd(raw - raw.mean(0), full_matrices=False).Vh[0]
    assert abs(roc_auc_score(truth.numpy(), (raw @ top).numpy()) - 0.5) < 0.1


def test_a_probe_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        fit_task_probe(TableReader(np.ones(20)), examples(np.ones(20)), None, None, 8, "cpu")


def test_the_task_view_reaches_the_distiller(notes_csv):
    """`distill.hidden_view: task` gives the hidden term a one-score read-out and the signal one score per word;
    the term is MSE between the two."""
    from dsgkd.core.engine import make_teacher_signal

    cfg = RunConfig().with_overrides({
        "data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.max_length": 64,
        "teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "uniform",
        "distill.alpha": 1.0, "distill.beta": 0.0, "distill.gamma": 0.0, "distill.hidden_view": "task",
        "distill.hidden_loss": "relational"})  # ignored by the task view: scores are compared by MSE
    run = resolve_run(cfg)
    p = prepare(run)
    model = Distiller(p.student, cfg.distill, p.layer_pairs, encoder_width(p.teacher_config)).eval()
    head = model.term_modules["hidden"]
    assert isinstance(head, torch.nn.Linear) and head.out_features == 1
    batch = collate(p.train_examples[:8], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    out = make_teacher_signal(p, None, torch.device("cpu"))(batch, "train")["pretrained"]
    assert out.pooled.shape[-1] == 1
    with torch.no_grad():
        _, parts, _ = model(batch, {"pretrained": out})
        s_out = p.student(input_ids=batch["s_ids"], attention_mask=batch["s_mask"], output_hidden_states=True)
        s_layers = [s for _, s in p.layer_pairs]
        expected = hidden_kd_from_pooled(out.pooled_for([t for t, _ in p.layer_pairs]),
                                         pool_layers(s_out.hidden_states, batch["s_spans"], s_layers),
                                         batch["term_mask"], head, "mse")
    torch.testing.assert_close(parts["hidden"], expected)
