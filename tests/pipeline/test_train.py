"""`dsgkd train` end to end on the offline stand-ins, its failure modes, determinism and resume."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from dsgkd.cli import main
from dsgkd.config import RunConfig
from dsgkd.core.engine import fit
from dsgkd.core.features import collate
from dsgkd.core.teacher.cache import CachedTeacher
from dsgkd.core.teacher.signal import LiveTeacher
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.teacher_cache import build_cache
from dsgkd.pipeline.teachers import prepare_run

PAIRS = [("kmbert-tiny", "xlmr-tiny"), ("kmbert-tiny", "kobert-tiny"),
         ("biobert-tiny", "xlmr-tiny"), ("biobert-tiny", "kobert-tiny")]
FAST = ["--epochs", "1", "--batch-size", "16", "--max-length", "64", "--n-bootstrap", "50"]


def train_args(notes, out, *extra):
    return ["train", "--data", str(notes), "--text-col", "ER_DHX", "--label-col", "LABEL", *FAST,
            "--out", str(out), *extra]


def fit_run(cfg: RunConfig, **kwargs):
    """What `dsgkd train` does before writing: prepare (fine-tuning the teacher if asked), then fit."""
    return fit(prepare_run(resolve_run(cfg), teacher_weights=kwargs.get("teacher_cache") is None), **kwargs)


def small_cfg(notes, **over) -> RunConfig:
    cfg = RunConfig().with_overrides({"data.path": str(notes), "data.text_col": "ER_DHX", "data.label_col": "LABEL",
                                      "train.epochs": 2, "train.batch_size": 16, "train.max_length": 64,
                                      "eval.n_bootstrap": 50})
    return cfg.with_overrides(over) if over else cfg


@pytest.mark.parametrize("teacher, student", PAIRS)
def test_train_each_seed_pair_and_reload_the_student(notes_csv, tmp_path, teacher, student, capsys):
    out = tmp_path / "run"
    assert main(train_args(notes_csv, out, "--teacher", teacher, "--student", student)) == 0
    assert "test auroc" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"auroc", "auprc", "f1", "brier", "ece"}
    assert metrics["test"]["auroc"]["ci_low"] <= metrics["test"]["auroc"]["value"] <= metrics["test"]["auroc"]["ci_high"]
    assert RunConfig.from_yaml(out / "config.yaml").student.ref == student
    # the default layer map, auto, is recorded as the map it stood for: the paper's on equal depths (4 and 4)
    recorded = RunConfig.from_yaml(out / "config.yaml").distill.layer_map
    assert recorded == ("all" if (teacher, student) == ("kmbert-tiny", "xlmr-tiny") else "uniform")
    preds = pd.read_csv(out / "predictions.csv")
    model = AutoModelForSequenceClassification.from_pretrained(out / "student").eval()
    tok = AutoTokenizer.from_pretrained(out / "student")
    cfg = RunConfig.from_yaml(out / "config.yaml")
    test_texts = prepare(resolve_run(cfg)).splits.test["text"][:8]
    enc = tok(test_texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():  # predictions.csv holds the calibrated probabilities: softmax(logits / T)[1]
        probs = (model(**enc).logits / metrics["temperature"]).softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(probs, preds["prob"].to_numpy()[:8], atol=1e-5)


def test_accumulation_and_class_weights_are_recorded(notes_csv, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(notes_csv, out, "--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--grad-accum",
                           "2", "--class-weight", "balanced", "--precision", "auto")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["effective_batch_size"] == 32 and metrics["precision"] == "fp32"
    saved = RunConfig.from_yaml(out / "config.yaml").train
    assert (saved.grad_accum, saved.class_weight, saved.precision) == (2, "balanced", "auto")


def test_same_seed_twice_gives_identical_metrics(notes_csv, tmp_path):
    args = ("--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map", "skip", "--seed", "3")
    for name in ("a", "b"):
        assert main(train_args(notes_csv, tmp_path / name, *args)) == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in "ab")
    a.pop("train_seconds"), b.pop("train_seconds")
    assert a == b


def test_local_hf_directory_as_teacher_and_student(notes_csv, tmp_path, local_bert_dir):
    out = tmp_path / "run"
    assert main(train_args(notes_csv, out, "--teacher", str(local_bert_dir), "--student", str(local_bert_dir),
                           "--layer-map", "all")) == 0
    assert (out / "student" / "config.json").is_file()


def test_seeds_compare_against_the_kd_off_control(notes_csv, tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(train_args(notes_csv, out, "--teacher", "kmbert-tiny", "--student", "kobert-tiny",
                           "--seeds", "0,1")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"dsgkd", "control"}
    d = summary["auroc_dsgkd_minus_control"]
    per_seed = np.mean(summary["per_seed"]["dsgkd"]) - np.mean(summary["per_seed"]["control"])
    assert d["diff"] == pytest.approx(per_seed) and d["ci_low"] <= d["diff"] <= d["ci_high"] and 0 <= d["p"] <= 1
    control = RunConfig.from_yaml(out / "seed_1" / "control" / "config.yaml")
    kd = RunConfig.from_yaml(out / "seed_1" / "dsgkd" / "config.yaml")
    assert (control.distill.alpha, control.distill.beta, control.distill.gamma) == (0, 0, 0)
    assert control.train == kd.train and control.student == kd.student
    assert {c.distill.layer_map for c in (control, kd, RunConfig.from_yaml(out / "config.yaml"))} == {"uniform"}
    assert "seeds × notes bootstrap" in capsys.readouterr().out
    for seed in (0, 1):  # every arm's student carries its own threshold and card
        for arm in ("dsgkd", "control"):
            run = out / f"seed_{seed}" / arm
            meta = json.loads((run / "student" / "dsgkd.json").read_text())
            assert meta["threshold"] == json.loads((run / "metrics.json").read_text())["threshold"]
    assert "KD-off control" in (out / "seed_1" / "control" / "student" / "README.md").read_text()


@pytest.mark.parametrize("extra, needle", [
    (["--temperature", "-1"], "distill.temperature"),
    (["--alpha", "-0.5"], "distill.alpha"),
    (["--epochs", "0"], "train.epochs"),
    (["--layer-map", "0:0,9:1"], "out of range"),
    (["--layer-map", "all"], "equal depths"),
    (["--max-length", "5000"], "max_length"),
    (["--student", "nobody/no-such-model"], "nobody/no-such-model"),
    (["--gamma", "0.5"], "teacher.finetune"),
    (["--selector", "nouns"], "unknown term selector"),
    (["--class-weight", "heavy"], "train.class_weight"),
    (["--grad-accum", "0"], "train.grad_accum"),
    (["--layer-map", "uniform", "--selector", "lexicon:/no/such/terms.txt"], "lexicon file not found"),
    (["--label-names", "emergency"], "data.label_names"),
    (["--label-names", "same,same"], "data.label_names"),
])
def test_bad_settings_exit_2_with_one_line_and_no_output(notes_csv, tmp_path, capsys, extra, needle):
    out = tmp_path / "run"
    args = train_args(notes_csv, out, "--teacher", "kmbert-tiny", "--student", "kobert-tiny", *extra)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".run*"))


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda d: d / "missing.csv", "missing.csv"),
    (lambda d: _write(d / "empty.csv", "ER_DHX,LABEL\n"), "no rows"),
    (lambda d: _write(d / "cols.csv", "TEXT,LABEL\nfever,1\n"), "ER_DHX"),
    (lambda d: _write(d / "labels.csv", "ER_DHX,LABEL\nfever,1\ncough,2\n"), "row 2"),
    (lambda d: _write(d / "one.csv", "ER_DHX,LABEL\n" + "fever,1\n" * 20), "class"),
    (lambda d: _write(d / "kr.csv", "ER_DHX,LABEL\n" + "열 fever,1\n기침 cough,0\n" * 10, "cp949"), "--encoding"),
])
def test_bad_data_exits_2_naming_the_problem(tmp_path, capsys, make, needle):
    data = make(tmp_path)
    out = tmp_path / "run"
    assert main(train_args(data, out, "--teacher", "kmbert-tiny", "--student", "kobert-tiny")) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cached_teacher_gives_the_live_teacher_signal(notes_csv, tmp_path):
    cfg = small_cfg(notes_csv, **{"teacher.ref": "biobert-tiny", "student.ref": "xlmr-tiny",
                                  "distill.layer_map": "uniform"})
    p = prepare(resolve_run(cfg))
    cache = build_cache(cfg, p.teacher_layers(), tmp_path / "cache")
    live = LiveTeacher(p.teachers["pretrained"], p.teacher_layers(), p.teacher_attn_layers(), logits=False)
    cached = CachedTeacher(cache, p.teacher_layers(), p.teacher_attn_layers(), logits=False)
    batch = collate(p.train_examples[5:13], p.student_tok.pad_token_id, p.teacher_tok.pad_token_id)
    a, b = live(batch, "train"), cached(batch, "train")
    m = batch["term_mask"]
    assert m.any()
    torch.testing.assert_close(a.pooled[:, m], b.pooled[:, m], atol=2e-2, rtol=1e-2)  # cache stores fp16
    pair = (m[:, None, :, None] & m[:, None, None, :]).expand_as(a.grid[0])
    torch.testing.assert_close(a.grid[:, pair], b.grid[:, pair], atol=2e-3, rtol=1e-2)
    # a run reading the cache loads the teacher's tokenizer and shape, not its weights
    light = prepare(resolve_run(cfg), teacher_weights=False)
    assert light.teachers == {} and light.layer_pairs == p.layer_pairs
    result = fit_run(cfg.with_overrides({"train.epochs": 1}), teacher_cache=cache)
    assert result.history[0]["train_hidden"] > 0 and result.history[0]["train_attention"] > 0


def test_resume_from_a_checkpoint_continues_identically(notes_csv, tmp_path):
    cfg = small_cfg(notes_csv, **{"teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny",
                                  "distill.layer_map": "all", "train.epochs": 3, "train.patience": 5})
    full = fit_run(cfg)
    ckpt = tmp_path / "ckpt"

    def stop_after_first(report):
        if report.epoch == 1:
            report.save(ckpt)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_run(cfg, on_epoch=stop_after_first)
    resumed = fit_run(cfg, resume_from=ckpt)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(full.history, resumed.history):
        assert a["val_auroc"] == pytest.approx(b["val_auroc"], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_nan_loss_stops_with_the_reason(notes_csv):
    cfg = small_cfg(notes_csv, **{"teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny",
                                  "distill.layer_map": "uniform", "train.lr_encoder": 1e30, "train.lr_head": 1e30})
    from dsgkd.core.steps import NonFiniteLossError
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        fit_run(cfg)


def test_logit_kd_uses_one_fine_tuned_teacher_across_student_learning_rates(notes_csv, monkeypatch):
    import dsgkd.pipeline.teachers as teachers

    tuned = []
    real = teachers.finetuned_teacher_dir
    monkeypatch.setattr(teachers, "finetuned_teacher_dir", lambda cfg, splits: tuned.append(real(cfg, splits)) or tuned[-1])
    for lr in (1e-4, 3e-4):
        cfg = small_cfg(notes_csv, **{"teacher.ref": "kmbert-tiny", "student.ref": "kobert-tiny",
                                      "teacher.finetune": True, "teacher.finetune_epochs": 1,
                                      "distill.gamma": 0.5, "distill.temperature": 2.0,
                                      "distill.layer_map": "uniform", "train.epochs": 1, "train.lr_encoder": lr})
        result = fit_run(cfg)
        assert result.history[0]["train_logit"] > 0
    assert len(tuned) == 2 and tuned[0] == tuned[1]


def test_knowledge_free_teacher_is_fine_tuned_from_random_weights_by_the_same_recipe(notes_csv):
    from safetensors.torch import load_file

    from dsgkd.data.emr import load_splits
    from dsgkd.pipeline.teachers import finetuned_teacher_dir

    cfg = small_cfg(notes_csv, **{"teacher.ref": "kmbert-tiny", "teacher.finetune": True,
                                  "teacher.finetune_epochs": 1})
    splits = load_splits(cfg.data)
    pretrained = finetuned_teacher_dir(cfg, splits)
    random = finetuned_teacher_dir(cfg.with_overrides({"teacher.random_init": True}), splits)
    other_lr = finetuned_teacher_dir(cfg.with_overrides({"teacher.finetune_lr_encoder": 1e-5}), splits)
    assert len({pretrained, random, other_lr}) == 3
    assert finetuned_teacher_dir(cfg.with_overrides({"train.lr_encoder": 5e-3}), splits) == pretrained
    a, b = (load_file(d / "model.safetensors") for d in (pretrained, random))
    emb = next(k for k in a if k.endswith("word_embeddings.weight"))
    assert not torch.allclose(a[emb], b[emb])
    assert any(k.startswith("classifier") for k in b)


def test_every_registered_hidden_loss_is_a_config_value_and_a_flag_choice_and_nothing_else_is():
    from dsgkd.cli import build_parser
    from dsgkd.config import DistillConfig
    from dsgkd.core.losses.hidden import HIDDEN_LOSSES

    assert list(HIDDEN_LOSSES) == ["mse", "cosine", "relational"]
    for kind in HIDDEN_LOSSES:
        assert DistillConfig(hidden_loss=kind).hidden_loss == kind
        args = build_parser().parse_args(["train", "--data", "x.csv", "--out", "o", "--hidden-loss", kind])
        assert args.hidden_loss == kind
    with pytest.raises(ValueError, match="unknown hidden loss 'huber'; expected one of mse, cosine, relational"):
        DistillConfig(hidden_loss="huber")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "x.csv", "--out", "o", "--hidden-loss", "huber"])


def test_long_notes_in_windows_are_scored_once_each_as_trained_and_as_served(notes_csv, tmp_path):
    """At 24 tokens most notes take several windows: the run still has one prediction per test note, and the
    student in service pools the same windows (dsgkd.json says how), giving the run's own test probabilities."""
    from dsgkd.pipeline.serve import load_student, predict_probs

    out = tmp_path / "run"
    args = train_args(notes_csv, out, "--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map",
                      "uniform", "--long-notes", "windows")
    assert main([*args[:args.index("--max-length")], "--max-length", "24", *args[args.index("--max-length") + 2:]]) == 0
    cfg = RunConfig.from_yaml(out / "config.yaml")
    assert cfg.train.long_notes == "windows" and cfg.train.max_length == 24
    test_notes = prepare(resolve_run(cfg)).splits.test
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == len(test_notes)
    student = load_student(out)
    assert student.meta["long_notes"] == "windows"
    np.testing.assert_allclose(predict_probs(student, list(test_notes["text"])), preds["prob"], atol=1e-5)
    truncated = student.meta | {"long_notes": "truncate"}
    assert not np.allclose(predict_probs(dataclasses.replace(student, meta=truncated), list(test_notes["text"])),
                           preds["prob"], atol=1e-5)
