"""The head's pooling (`student.pooling`): what a mean-pooled head reads, that padding cannot move it, that it
survives a save and every dsgkd loader, and that a table's recipe grid tries it for students only."""
import json

import pandas as pd
import pytest
import torch
from transformers import (AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification,
                          XLMRobertaConfig, XLMRobertaForSequenceClassification)

from dsgkd.cli import main
from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.experiments import recipe
from dsgkd.models.pooling import CONFIG_KEY, saved_pooling, set_pooling
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.student_files import load_classifier
from dsgkd.pipeline.teachers import teacher_finetune_config

SHAPE = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _xlmr():
    torch.manual_seed(0)
    return XLMRobertaForSequenceClassification(XLMRobertaConfig(**SHAPE, pad_token_id=1)).eval()


def _bert():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**SHAPE, pad_token_id=0)).eval()


def _batch():
    ids = torch.tensor([[2, 7, 8, 9, 10, 3], [2, 11, 12, 3, 1, 1]])
    return ids, torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


def _by_hand(model, ids, mask):
    """The masked mean of the last layer, through the family's own head layers."""
    with torch.no_grad():
        states = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        mean = (states * m).sum(1) / m.sum(1)
        if isinstance(model, XLMRobertaForSequenceClassification):
            head = model.classifier
            return head.out_proj(torch.tanh(head.dense(mean)))
        pooler = model.base_model.pooler
        return model.classifier(pooler.activation(pooler.dense(mean)))


@pytest.mark.parametrize("make", [_xlmr, _bert], ids=["xlm-roberta head", "bert pooler"])
def test_a_mean_pooled_head_reads_the_masked_mean_of_the_last_layer(make):
    model = make()
    ids, mask = _batch()
    with torch.no_grad():
        first_token = model(input_ids=ids, attention_mask=mask).logits
    set_pooling(model, "mean")
    with torch.no_grad():
        pooled = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(pooled, _by_hand(model, ids, mask), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(pooled, first_token, atol=1e-4)
    assert model.config.to_dict()[CONFIG_KEY] == "mean"


@pytest.mark.parametrize("make", [_xlmr, _bert], ids=["xlm-roberta head", "bert pooler"])
def test_padding_does_not_move_a_mean_pooled_score(make):
    """Length-bucketed batches pad a note by what its neighbours need: its score must not depend on them."""
    model = set_pooling(make(), "mean")
    ids, mask = _batch()
    with torch.no_grad():
        in_batch = model(input_ids=ids, attention_mask=mask).logits[1]
        alone = model(input_ids=ids[1:, :4], attention_mask=mask[1:, :4]).logits[0]
        positional = model(ids, mask).logits[1]
    torch.testing.assert_close(in_batch, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(positional, in_batch)


def test_cls_undoes_mean_and_leaves_no_key_in_the_config():
    model = _xlmr()
    ids, mask = _batch()
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
    set_pooling(set_pooling(model, "mean"), "cls")
    with torch.no_grad():
        after = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(after, before)
    assert CONFIG_KEY not in model.config.to_dict() and saved_pooling(model) == "cls"


def test_a_saved_mean_pooled_classifier_loads_pooling_the_mean_and_plain_transformers_does_not(tmp_path):
    model = set_pooling(_xlmr(), "mean")
    ids, mask = _batch()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())[CONFIG_KEY] == "mean"
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
        got = load_classifier(tmp_path).eval()(input_ids=ids, attention_mask=mask).logits
        plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()(input_ids=ids,
                                                                                    attention_mask=mask).logits
    torch.testing.assert_close(got, want)
    assert not torch.allclose(plain, want, atol=1e-4)  # why the model card warns


def test_a_model_without_a_first_token_reader_is_refused_in_one_line():
    model = torch.nn.Linear(2, 2)
    model.config = BertConfig(**SHAPE)
    with pytest.raises(UserError, match="pooling mean: Linear"):
        set_pooling(model, "mean")


def test_a_teacher_is_fine_tuned_with_its_first_token_head_whatever_the_student_pools():
    cfg = RunConfig.from_dict({"data": {"path": "x.csv"}, "student": {"pooling": "mean"},
                               "teacher": {"finetune": True}})
    assert teacher_finetune_config(cfg).student.pooling == "cls"


def test_the_recipe_grid_tries_each_pooling_for_a_student_only_and_keeps_the_best(tmp_path):
    base = RunConfig.from_dict({"data": {"path": "x.csv"}})
    student_jobs = recipe.grid_jobs(base, "xlmr-tiny", tmp_path, student=True)
    teacher_jobs = recipe.grid_jobs(base, "kmbert-tiny", tmp_path)
    assert {cfg.student.pooling for _, cfg, _ in student_jobs} == {"cls", "mean"}
    assert len(student_jobs) == 2 * len(recipe.LR_GRID) * len(recipe.DESIGN_SEEDS)
    assert {cfg.student.pooling for _, cfg, _ in teacher_jobs} == {"cls"}
    assert len({out for _, _, out in student_jobs}) == len(student_jobs)
    for _, cfg, out in student_jobs:
        best = cfg.student.pooling == "mean" and cfg.train.lr_encoder == 1e-3
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"val": {"auroc": 0.8 if best else 0.6}}))
    chosen = recipe.choose("xlmr-tiny", tmp_path, base, student=True)
    assert (chosen["lr_encoder"], chosen["lr_head"], chosen["pooling"]) == (1e-3, 3e-3, "mean")
    teacher = recipe.with_recipes(base, "kmbert-tiny", "xlmr-tiny",
                                  {"kmbert-tiny": {"lr_encoder": 3e-4, "lr_head": 3e-3}, "xlmr-tiny": chosen})
    assert teacher.student.pooling == "mean" and teacher.train.lr_encoder == 1e-3


@pytest.fixture(scope="module")
def mean_run(notes_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("mean_pooled") / "run"
    assert main(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL",
                 "--teacher", "kmbert-tiny", "--student", "xlmr-tiny", "--pooling", "mean", "--alpha", "0",
                 "--epochs", "1", "--batch-size", "16", "--max-length", "64", "--n-bootstrap", "20",
                 "--out", str(out)]) == 0
    return out


def test_a_mean_pooled_student_is_scored_by_evaluate_as_it_was_trained(mean_run, tmp_path):
    """End to end: trained with the mean, saved, loaded back by `dsgkd evaluate`: the run's own test metrics come
    back (a loader that dropped the pooling would score the notes by the first token instead)."""
    out = mean_run
    assert json.loads((out / "student" / "config.json").read_text())[CONFIG_KEY] == "mean"
    assert "masked mean of the last layer" in (out / "student" / "README.md").read_text()
    test = prepare(resolve_run(RunConfig.from_yaml(out / "config.yaml"))).splits.test
    split = tmp_path / "test.csv"
    pd.DataFrame({"ER_DHX": test["text"], "LABEL": test["label"]}).to_csv(split, index=False)
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(out), "--data", str(split), "--n-bootstrap", "20",
                 "--json", str(report)]) == 0
    got = json.loads(report.read_text())["metrics"]["auroc"]["value"]
    assert got == pytest.approx(json.loads((out / "metrics.json").read_text())["test"]["auroc"]["value"], abs=1e-6)


def test_the_onnx_export_of_a_mean_pooled_student_holds_the_mean(mean_run, notes_csv, tmp_path):
    pytest.importorskip("onnxruntime")
    from dsgkd.pipeline.serve import load_student, predict_probs

    assert main(["export-onnx", "--model", str(mean_run), "--out", str(tmp_path / "onnx")]) == 0
    texts = pd.read_csv(notes_csv)["ER_DHX"].tolist()[:40]
    want = predict_probs(load_student(mean_run), texts)
    assert abs(want - predict_probs(load_student(tmp_path / "onnx"), texts)).max() < 1e-5


@pytest.mark.parametrize("make", [_xlmr, _bert], ids=["xlm-roberta head", "bert pooler"])
def test_two_threads_scoring_through_one_model_read_their_own_masks(make):
    """A server scores from several threads through one model: each must pool over its own note's mask, even when
    the other thread's forward sets its mask between this thread's forward starting and its head reading it."""
    import threading

    model = set_pooling(make(), "mean")
    ids, mask = _batch()
    inputs = [(ids[:1], mask[:1]), (ids[1:], mask[1:])]
    with torch.no_grad():
        alone = [model(input_ids=i, attention_mask=m).logits for i, m in inputs]
    both_masks_kept = threading.Barrier(2, timeout=10)

    def wait_for_the_other_thread(*_):
        both_masks_kept.wait()

    model.base_model.encoder.register_forward_pre_hook(wait_for_the_other_thread)
    together = [None, None]

    def score(k):
        with torch.no_grad():
            together[k] = model(input_ids=inputs[k][0], attention_mask=inputs[k][1]).logits

    threads = [threading.Thread(target=score, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(2):
        torch.testing.assert_close(together[k], alone[k])


@pytest.mark.parametrize("make", [_xlmr, _bert], ids=["xlm-roberta head", "bert pooler"])
def test_a_reader_called_with_the_states_by_keyword_reads_the_mean_too(make):
    """A family whose head takes the states by keyword must pool the mean, not fail or read the first token."""
    model = set_pooling(make(), "mean")
    ids, mask = _batch()
    reader = model.classifier if isinstance(model, XLMRobertaForSequenceClassification) else model.base_model.pooler
    name = "features" if reader is model.classifier else "hidden_states"
    with torch.no_grad():
        states = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        model(input_ids=ids, attention_mask=mask)  # leaves this batch's mask for the reader
        by_keyword = reader(**{name: states})
        head = by_keyword if reader is model.classifier else model.classifier(by_keyword)
    torch.testing.assert_close(head, _by_hand(model, ids, mask), rtol=1e-5, atol=1e-6)
