"""docs/architecture.md's "Extending" examples run as written, and the KD term it adds is a full citizen:
configs accept its weight, the distiller trains a step with it, a search samples it, the control turns it off."""
import re
from pathlib import Path

import optuna
import pytest
import torch

from dsgkd import choices
from dsgkd.config import RunConfig
from dsgkd.errors import UserError

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def examples() -> list[str]:
    extending = DOC.read_text(encoding="utf-8").split("\n## Extending\n", 1)[1]
    return re.findall(r"```python\n(.*?)```", extending, flags=re.S)


@pytest.fixture
def scratch_registries(monkeypatch):
    """Whatever an example registers is gone after the test."""
    for name in ("SELECTORS", "HIDDEN_LOSSES", "LAYER_MAPS", "THRESHOLD_RULES", "KD_TERMS"):
        registry = getattr(choices, name)
        monkeypatch.setattr(registry, "_entries", dict(registry.entries))


def run_example(snippet: str) -> dict:
    namespace: dict = {"__name__": "architecture_example"}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    return namespace


def test_the_doc_has_an_example_per_extension_point():
    snippets = examples()
    for needle in ("KD_TERMS.register", "HIDDEN_LOSSES.register", "LAYER_MAPS.register", "SELECTORS.register",
                   "get_world("):
        assert any(needle in s for s in snippets), needle


@pytest.mark.parametrize("index", range(len(examples())))
def test_every_example_runs(scratch_registries, index):
    run_example(examples()[index])


def kd_term_example() -> str:
    return next(s for s in examples() if "KD_TERMS.register" in s)


def test_a_new_term_field_is_unknown_until_the_term_is_registered(scratch_registries):
    with pytest.raises(UserError, match=r"distill\.cos_logit: unknown key"):
        RunConfig.from_dict({"distill": {"cos_logit": 0.5}})
    run_example(kd_term_example())
    assert RunConfig.from_dict({"distill": {"cos_logit": 0.5}, "teacher": {"finetune": True}}).distill.cos_logit == 0.5
    with pytest.raises(UserError, match=r"distill\.cos_logit > 0 needs teacher.finetune"):
        RunConfig.from_dict({"distill": {"cos_logit": 0.5}})
    with pytest.raises(UserError, match=r"distill\.cos_logit: must be >= 0"):
        RunConfig.from_dict({"distill": {"cos_logit": -1}, "teacher": {"finetune": True}})
    from dsgkd.core.terms import kd_off, paper_weights

    assert kd_off()["distill.cos_logit"] == 0.0 and paper_weights()["distill.cos_logit"] == 0.0
    assert RunConfig().distill.control().cos_logit == 0.0


def test_a_new_term_trains_one_step(scratch_registries, notes_csv):
    from dsgkd.core.distiller import Distiller
    from dsgkd.core.engine import make_teacher_signal
    from dsgkd.core.features import collate
    from dsgkd.core.steps import Stepper, make_optimizer
    from dsgkd.pipeline.prepare import prepare
    from dsgkd.pipeline.resolve import resolve_run

    run_example(kd_term_example())
    cfg = RunConfig().with_overrides({
        "data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.max_length": 64,
        "teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny", "distill.layer_map": "uniform",
        "distill.beta": 0.0})
    # the pretrained teacher with a fresh head stands in for a fine-tuned copy (no fine-tuning in a unit test)
    cfg = cfg.model_copy(update={"distill": cfg.distill.model_copy(update={"cos_logit": 0.5})})
    p = prepare(resolve_run(cfg), teacher_dir="kmbert-tiny")
    assert p.sources == ["pretrained", "finetuned"]  # hidden-state KD reads the one, the new term the other
    model = Distiller(p.student, cfg.distill, p.layer_pairs, p.teacher_config.hidden_size)
    assert [term.name for term, _, _ in model.terms] == ["hidden", "cos_logit"]
    signal = make_teacher_signal(p, None, torch.device("cpu"))
    batch = collate(p.train_examples[:8], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    assert signal(batch, "train")["finetuned"].logits is not None  # asked for because the new term reads them
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    before = [w.detach().clone() for w in model.student.parameters()]
    parts = Stepper(model, signal, opt, sched, grad_clip=1.0, device=torch.device("cpu")).step([batch])
    assert {"ce", "hidden", "cos_logit"} <= set(parts) and 0 < parts["cos_logit"] <= 2
    assert parts["loss"] == pytest.approx(parts["ce"] + 0.6 * parts["hidden"] + 0.5 * parts["cos_logit"], rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.student.parameters()))


def test_a_search_samples_the_new_term(scratch_registries):
    from dsgkd.search.space import DefineByRun, resolve_pairs, space_from_dict

    run_example(kd_term_example())
    space = space_from_dict({
        "base": {"data": {"path": "notes.csv"}, "teacher": {"finetune": True}},
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
        "params": {"distill.cos_logit": {"type": "float", "low": 0.0, "high": 1.0},
                   "distill.gamma": {"type": "categorical", "choices": [0.0, 1.0]},
                   "distill.temperature": {"type": "float", "low": 1.0, "high": 4.0}},
        "layer_maps": ["all"], "include_paper_defaults": False})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    define = DefineByRun(space, resolve_pairs(space, lambda ref: 4))
    study.optimize(lambda trial: define(trial) or 0.0, n_trials=8)
    configs = [space.trial_config(t.params) for t in study.trials]
    assert len({c.distill.cos_logit for c in configs}) == 8  # searched: a value per trial
    for trial, cfg in zip(study.trials, configs):  # the temperature only where logit KD is on
        assert ("distill.temperature" in trial.params) == (cfg.distill.gamma > 0)
