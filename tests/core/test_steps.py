"""The optimiser step: gradient accumulation equals one large batch, the precision switch, class weights, label
smoothing."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dsgkd.config import RunConfig
from dsgkd.core.distiller import Distiller
from dsgkd.core.features import collate
from dsgkd.core.steps import Stepper, autocast, class_weights, resolve_precision
from dsgkd.errors import UserError
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run


@pytest.fixture(scope="module")
def labelled(notes_csv):
    """32 labelled notes of a KD-off run on a tiny student, collated whole and in halves."""
    cfg = RunConfig().with_overrides({"data.path": str(notes_csv), "data.text_col": "ER_DHX",
                                      "data.label_col": "LABEL", "train.max_length": 64,
                                      "student.ref": "kobert-tiny", "distill.alpha": 0.0, "distill.beta": 0.0,
                                      "distill.gamma": 0.0})
    p = prepare(resolve_run(cfg))
    examples = [ex for ex in p.train_examples if ex["label"] >= 0][:32]
    pad = p.student_tok.pad_token_id
    return p, cfg, [collate(examples, pad)], [collate(examples[:16], pad), collate(examples[16:], pad)]


def _one_step(p, cfg, group, precision="fp32"):
    torch.manual_seed(0)
    model = Distiller(copy.deepcopy(p.student), cfg.distill, p.layer_pairs, None).eval()  # eval: no dropout
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    stepper = Stepper(model, None, opt, sched, grad_clip=1e9, device=torch.device("cpu"), precision=precision)
    parts = stepper.step(group)
    return parts, {k: v.detach().clone() for k, v in model.named_parameters()}, stepper


def test_two_accumulated_batches_of_16_are_one_batch_of_32(labelled):
    p, cfg, whole, halves = labelled
    one, after_one, _ = _one_step(p, cfg, whole)
    two, after_two, _ = _one_step(p, cfg, halves)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    before = dict(p.student.named_parameters())
    moved = 0
    for name, value in after_one.items():
        torch.testing.assert_close(after_two[name], value, rtol=1e-4, atol=1e-6)
        moved += not torch.equal(value, before[name.removeprefix("student.")].detach())
    assert moved > 10  # the step changed the weights: the comparison is not of two untouched models


def test_fp16_scales_the_loss_and_still_steps():
    if not hasattr(torch.amp, "GradScaler"):
        pytest.skip("this torch has no device-generic GradScaler")
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, batch, teacher):
            logits = self.inner(batch["x"])
            loss = F.cross_entropy(logits.float(), batch["labels"])
            return loss, {"ce": loss}, logits

    stepper = Stepper(Net(), None, opt, sched, grad_clip=1.0, device=torch.device("cpu"), precision="fp16")
    assert stepper.scaler.is_enabled() and stepper.scaler.get_scale() == 65536.0
    before = model.weight.detach().clone()
    batch = {"x": torch.randn(8, 4), "labels": torch.randint(0, 2, (8,))}
    try:
        stepper.step([batch])
    except RuntimeError as e:  # a torch build without CPU fp16 autocast kernels
        pytest.skip(f"fp16 autocast on CPU unsupported here: {e}")
    assert not torch.equal(model.weight, before)  # unscaled gradients: a finite, normal step
    assert torch.isfinite(model.weight).all()


def test_precision_resolves_per_device():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_class_weights_balance_the_task_loss(labelled):
    torch.testing.assert_close(class_weights("balanced", [0, 0, 0, 1]), torch.tensor([4 / 6, 2.0]))
    torch.testing.assert_close(class_weights(3.0, [0, 1]), torch.tensor([1.0, 3.0]))
    assert class_weights("none", [0, 1]) is None
    p, cfg, whole, _ = labelled
    weights = class_weights("balanced", whole[0]["labels"].tolist())
    model = Distiller(p.student, cfg.distill, p.layer_pairs, None, class_weights=weights).eval()
    with torch.no_grad():
        _, parts, logits = model(whole[0], None)
    labels = whole[0]["labels"].numpy()
    per_note = F.cross_entropy(logits, whole[0]["labels"], reduction="none").numpy()
    w = weights.numpy()[labels]
    assert float(parts["ce"]) == pytest.approx(float(np.sum(w * per_note) / np.sum(w)), rel=1e-5)
    assert "class_weights" not in model.state_dict()  # a setting, not a weight: checkpoints stay as they were


def test_label_smoothing_reaches_the_task_loss(labelled):
    """`train.label_smoothing` is torch's, on the labelled notes only, and combines with class weights."""
    p, cfg, whole, _ = labelled
    cfg = cfg.with_overrides({"train.label_smoothing": 0.2})
    weights = class_weights("balanced", whole[0]["labels"].tolist())
    model = Distiller(p.student, cfg.distill, p.layer_pairs, None, class_weights=weights,
                      label_smoothing=cfg.train.label_smoothing).eval()
    with torch.no_grad():
        _, parts, logits = model(whole[0], None)
    y = whole[0]["labels"]
    logp = F.log_softmax(logits.float(), -1)
    target = torch.full_like(logp, 0.2 / 2).scatter_(1, y[:, None], 1 - 0.2 + 0.2 / 2)
    w = weights[y]  # torch weights each note by its true class's weight, the smoothed part by the class it reads
    expected = -(target * logp * weights[None, :]).sum(1).sum() / w.sum()
    assert float(parts["ce"]) == pytest.approx(float(expected), rel=1e-5)
    plain = float(F.cross_entropy(logits, y, weight=weights))  # untrained logits sit near 0: close, yet apart
    assert abs(float(parts["ce"]) - plain) > 20 * 1e-5 * plain  # 20x the tolerance the match above holds
    with pytest.raises(UserError, match="label_smoothing"):
        RunConfig.from_dict({"train": {"label_smoothing": 1.0}})


@pytest.mark.parametrize("spelling", [True, False, "true", 0, -2.0, float("inf")])
def test_class_weight_refuses_what_is_not_a_weight(spelling):
    with pytest.raises(UserError, match="train.class_weight"):
        RunConfig.from_dict({"train": {"class_weight": spelling}})
    assert RunConfig.from_dict({"train": {"class_weight": 2}}).train.class_weight == 2.0
