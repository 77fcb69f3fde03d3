"""A student written by `dsgkd train`, put to use: its stored threshold and card, `dsgkd evaluate`, `dsgkd predict`."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from dsgkd.cli import main
from dsgkd.config import RunConfig
from dsgkd.core.metrics import METRICS, evaluate_with_ci
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.serve import STUDENT_META, load_student, predict_probs


@pytest.fixture(scope="module")
def run_dir(notes_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("served") / "run"
    assert main(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL",
                 "--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map", "uniform",
                 "--epochs", "2", "--batch-size", "16", "--max-length", "64", "--n-bootstrap", "50",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def test_split_csv(run_dir):
    """The run's own test split as a labelled file, as a user would hold it."""
    test = prepare(resolve_run(RunConfig.from_yaml(run_dir / "config.yaml"))).splits.test
    path = run_dir.parent / "test_split.csv"
    pd.DataFrame({"ER_DHX": test["text"], "LABEL": test["label"]}).to_csv(path, index=False)
    return path


def test_the_student_carries_its_threshold_and_still_loads_with_auto_classes(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    meta = json.loads((run_dir / "student" / STUDENT_META).read_text())
    cfg = RunConfig.from_yaml(run_dir / "config.yaml")
    assert meta["threshold"] == metrics["threshold"] and meta["threshold_rule"] == "f1"
    assert (meta["max_length"], meta["batch_size"], meta["text_col"], meta["label_col"]) == (64, 16, "ER_DHX", "LABEL")
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "student")
    tok = AutoTokenizer.from_pretrained(run_dir / "student")
    assert model.config.num_labels == 2 and tok.is_fast
    assert model.config.id2label == {0: "0", 1: "1"} and meta["label_names"] == ["0", "1"]  # no --label-names
    assert load_student(run_dir).threshold == metrics["threshold"] == load_student(run_dir / "student").threshold
    assert cfg.train.max_length == meta["max_length"]


def test_the_model_card_states_provenance_metrics_threshold_and_limits(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    card = ModelCard.load(run_dir / "student" / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert {"dsgkd", "knowledge-distillation", "offline-stand-in"} <= set(card.data.tags)
    text = card.text
    for needle in ("kmbert-tiny", "kobert-tiny", metrics["data"]["fingerprint"],
                   "| alpha (hidden-state KD) | 0.6, reads the pretrained teacher |",
                   "| beta (attention KD) | 0.2, reads the pretrained teacher |", "| temperature | 1 |",
                   "uniform → [(0, 0), (2, 1), (4, 2)]",
                   "| selector (terms distilled) | latin |", "| hidden loss | mse |", f"{metrics['threshold']:.6g}",
                   "not validated clinically", "Research use", "synthetic"):
        assert needle in text, needle
    auroc = metrics["test"]["auroc"]
    assert f"| auroc | {auroc['value']:.4f} | [{auroc['ci_low']:.4f}, {auroc['ci_high']:.4f}] |" in text
    assert f"| f1 | {metrics['val']['f1']:.4f} |" in text  # the validation table


def test_the_card_of_a_hub_student_names_its_base_model_and_the_run_s_choices(run_dir):
    from dsgkd.pipeline.card import render_card

    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = RunConfig.from_yaml(run_dir / "config.yaml").with_overrides({
        "student.ref": "xlmr", "teacher.finetune": True, "teacher.random_init": True, "distill.gamma": 0.5,
        "data.classes": ["routine", "urgent"], "data.test_path": "held_out.csv"})
    card = ModelCard(render_card(cfg, metrics, [(0, 0), (4, 2)]))
    assert card.data.base_model == "FacebookAI/xlm-roberta-base"
    assert "offline-stand-in" in card.data.tags  # the teacher is still a stand-in
    for needle in ("random-init twin", "a copy fine-tuned on the task, for the terms that read it",
                   "| gamma (logit KD) | 0.5, reads the finetuned teacher |",
                   "| alpha (hidden-state KD) | 0.6, reads the pretrained teacher |",
                   "classes ['routine', 'urgent']", "held_out.csv", "uniform → [(0, 0), (4, 2)]"):
        assert needle in card.text, needle


def test_evaluate_on_the_test_split_reproduces_the_runs_test_metrics(run_dir, test_split_csv, tmp_path, capsys):
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(test_split_csv), "--n-bootstrap", "50",
                 "--json", str(report)]) == 0
    assert "auroc" in capsys.readouterr().out
    got = json.loads(report.read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert got["threshold"] == metrics["threshold"] and got["n"] == metrics["data"]["n_test"]
    for m in METRICS:  # trained with eager attention (attention KD needs it), scored like the reload: SDPA
        for k in ("value", "ci_low", "ci_high"):
            assert got["metrics"][m][k] == pytest.approx(metrics["test"][m][k], abs=1e-6, nan_ok=True), (m, k)


def test_evaluate_scores_at_the_stored_threshold(run_dir, notes_csv, tmp_path):
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run_dir / "student"), "--data", str(notes_csv), "--text-col", "ER_DHX",
                 "--label-col", "LABEL", "--n-bootstrap", "30", "--seed", "4", "--json", str(report)]) == 0
    got = json.loads(report.read_text())
    student = load_student(run_dir)
    notes = pd.read_csv(notes_csv)
    p = predict_probs(student, list(notes["ER_DHX"]))
    expected = evaluate_with_ci(notes["LABEL"].to_numpy(), p, student.threshold, n_boot=30, seed=4)
    assert got["metrics"]["f1"] == expected["f1"] and got["metrics"]["auroc"] == expected["auroc"]
    assert got["threshold"] == student.threshold


def test_evaluate_drops_empty_notes_as_train_does_and_says_so(run_dir, notes_csv, tmp_path, capsys):
    notes = pd.read_csv(notes_csv, dtype=str)
    notes.loc[3, "ER_DHX"] = " "
    notes.to_csv(tmp_path / "notes.csv", index=False)
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(tmp_path / "notes.csv"), "--n-bootstrap", "20",
                 "--json", str(report)]) == 0
    assert "warning: dropped 1 rows with empty text" in capsys.readouterr().err
    got = json.loads(report.read_text())
    assert (got["n"], got["dropped_empty"]) == (len(notes) - 1, 1)


def test_a_student_from_a_newer_dsgkd_is_refused_in_one_line(run_dir, tmp_path, notes_csv, capsys):
    import shutil

    student = tmp_path / "student"
    shutil.copytree(run_dir / "student", student)
    meta = json.loads((student / STUDENT_META).read_text())
    (student / STUDENT_META).write_text(json.dumps({**meta, "format": 99}))
    assert main(["predict", "--model", str(student), "--data", str(notes_csv), "--out", str(tmp_path / "p.csv")]) == 2
    assert "format 99 is newer" in capsys.readouterr().err


def _hf_probs(student_dir, texts):
    """Calibrated P(positive) straight from the Hugging Face classes and the temperature in dsgkd.json, one note at
    a time: no dsgkd code involved."""
    model = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    tok = AutoTokenizer.from_pretrained(student_dir)
    t = json.loads((student_dir / STUDENT_META).read_text())["temperature"]
    with torch.no_grad():
        return np.array([(model(**tok(x, truncation=True, max_length=64, return_tensors="pt")).logits / t)
                         .softmax(-1)[0, 1].item() for x in texts])


def test_predict_keeps_every_row_in_order_with_ids_at_the_stored_threshold(run_dir, notes_csv, tmp_path, capsys):
    notes = pd.read_csv(notes_csv, dtype=str).sample(frac=1, random_state=3).reset_index(drop=True).iloc[:60]
    notes["VISIT"] = [f"v{i:04d}" for i in range(len(notes))[::-1]]  # ids not in sorted order, leading zeros kept
    notes.loc[[4, 17], "ER_DHX"] = ["", "   "]
    data = tmp_path / "new.csv"
    notes.to_csv(data, index=False)
    outs = {}
    for chunk in ("7", "4096"):
        outs[chunk] = tmp_path / f"preds_{chunk}.csv"
        assert main(["predict", "--model", str(run_dir), "--data", str(data), "--id-col", "VISIT",
                     "--out", str(outs[chunk]), "--chunk-rows", chunk]) == 0
    err = capsys.readouterr().err
    assert "predict: 7 rows" in err and "predict: 60 rows" in err
    preds = pd.read_csv(outs["7"], dtype={"VISIT": str})
    assert list(preds.columns) == ["VISIT", "prob", "label"]
    assert list(preds["VISIT"]) == list(notes["VISIT"])
    whole = pd.read_csv(outs["4096"], dtype={"VISIT": str})  # chunk boundaries change only the padding
    assert list(whole["VISIT"]) == list(preds["VISIT"])
    np.testing.assert_allclose(whole["prob"], preds["prob"], atol=1e-6)
    empty = preds.index.isin([4, 17])
    assert preds.loc[empty, "prob"].isna().all() and preds.loc[empty, "label"].isna().all()
    threshold = load_student(run_dir).threshold
    scored = preds[~empty]
    assert (scored["label"].astype(int) == (scored["prob"] >= threshold).astype(int)).all()
    np.testing.assert_allclose(scored["prob"], _hf_probs(run_dir / "student", notes.loc[~empty, "ER_DHX"]), atol=1e-5)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".tsv"])
def test_predict_reads_the_formats_the_loader_reads(run_dir, notes_csv, tmp_path, suffix):
    from dsgkd.data.synthetic import write_table

    notes = pd.read_csv(notes_csv).iloc[:25]
    src = tmp_path / f"notes{suffix}"
    if suffix == ".tsv":
        notes.to_csv(src, sep="\t", index=False)
    else:
        write_table(notes, src)
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(run_dir), "--data", str(src), "--id-col", "PT_ID", "--out", str(out),
                 "--chunk-rows", "10"]) == 0
    preds = pd.read_csv(out)
    assert list(preds["PT_ID"]) == list(notes["PT_ID"])
    np.testing.assert_allclose(preds["prob"], predict_probs(load_student(run_dir), list(notes["ER_DHX"])), atol=1e-7)


MEMORY_PROBE = """
import resource, sys
from dsgkd.pipeline.serve import load_student, predict_file
student, small, big, out = load_student(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
quiet = lambda line: None
predict_file(student, small, out, text_col="ER_DHX", chunk_rows=500, log=quiet)  # warm-up: first-call allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = predict_file(student, big, out, text_col="ER_DHX", id_col="PT_ID", chunk_rows=500, log=quiet)
print(n, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_predict_20000_rows_in_bounded_memory(run_dir, notes_csv, tmp_path):
    """Peak RSS growth over a warmed-up process: ~12-20 MB with chunks of 500 rows, ~100 MB when one chunk
    holds the whole file (measured on the 2-core dev machine), so a path that materialises it fails."""
    notes = pd.read_csv(notes_csv, dtype=str)
    big = pd.concat([notes] * 84, ignore_index=True).iloc[:20_000]
    big["PT_ID"] = [f"p{i}" for i in range(len(big))]
    big.to_csv(tmp_path / "big.csv", index=False)
    # one OpenMP thread: on a shared 2-core machine two spinning threads made this 170 s instead of 10-14 s
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(run_dir), str(notes_csv), str(tmp_path / "big.csv"),
                           str(tmp_path / "preds.csv")], capture_output=True, text=True, timeout=600, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    n, growth_mb = proc.stdout.split()
    assert int(n) == 20_000
    assert float(growth_mb) < 60, growth_mb
    preds = pd.read_csv(tmp_path / "preds.csv", usecols=["PT_ID"])
    assert len(preds) == 20_000 and preds["PT_ID"].iloc[-1] == "p19999"


def test_predict_scores_and_writes_each_chunk_before_reading_the_next(run_dir, notes_csv, tmp_path, monkeypatch):
    import dsgkd.pipeline.serve as serve

    events, real_chunks, real_probs = [], serve.iter_chunks, serve.predict_probs

    def chunks(*args, **kwargs):
        for k, item in enumerate(real_chunks(*args, **kwargs)):
            events.append(("read", k, len(item[0])))
            yield item

    monkeypatch.setattr(serve, "iter_chunks", chunks)
    monkeypatch.setattr(serve, "predict_probs", lambda s, texts, **kw: events.append(("score", len(texts)))
                        or real_probs(s, texts, **kw))
    serve.predict_file(load_student(run_dir), notes_csv, tmp_path / "p.csv", text_col="ER_DHX", chunk_rows=100,
                       log=lambda line: events.append(("log", line)))
    assert [e[0] for e in events] == ["read", "score", "log"] * 3
    assert [e[2] for e in events if e[0] == "read"] == [100, 100, 40]


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("make, extra, needle", [
    (lambda d: d / "missing.csv", [], "missing.csv: no such file"),
    (lambda d: _write(d / "cols.csv", "TEXT,LABEL\nfever,1\n"), [], "no column 'ER_DHX'"),
    (lambda d: _write(d / "kr.csv", "ER_DHX,LABEL\n" + "열 fever,1\n기침 cough,0\n" * 10, "cp949"), [],
     "try --encoding cp949"),
    (lambda d: _write(d / "notes.xlsx", "x"), [], "unsupported format"),
    (lambda d: _write(d / "ok.csv", "ER_DHX,LABEL\nfever,1\ncough,0\n"), ["--batch-size", "0"], "--batch-size"),
    (lambda d: _write(d / "ok.csv", "ER_DHX,LABEL\nfever,1\ncough,0\n"), ["--device", "gpu"], "--device 'gpu'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_dir, tmp_path, capsys, command, make, extra, needle):
    data = make(tmp_path)
    out = tmp_path / "out.csv"
    tail = ["--out", str(out)] if command == "predict" else ["--json", str(out)]
    assert main([command, "--model", str(run_dir), "--data", str(data), *extra, *tail]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))


@pytest.mark.parametrize("argv, needle", [
    (["evaluate", "--data", "{data_labels}"], "label '2' in column 'LABEL' is not 0 or 1"),
    (["evaluate", "--data", "{notes}", "--label-col", "GRADE"], "no column 'GRADE'"),
    (["predict", "--data", "{notes}", "--out", "{tmp}"], "is a directory"),
    (["predict", "--data", "{notes}", "--out", "{notes}"], "is the input file"),
    (["predict", "--data", "{notes}", "--id-col", "label", "--out", "{tmp}/p.csv"], "already has a column"),
    (["predict", "--data", "{empty}", "--out", "{tmp}/p.csv"], "no rows"),
    (["predict", "--data", "{ragged}", "--chunk-rows", "1", "--out", "{tmp}/p.csv"], "Expected 1 fields in line 4"),
])
def test_bad_arguments_exit_2_with_one_line(run_dir, notes_csv, tmp_path, capsys, argv, needle):
    _write(tmp_path / "labels.csv", "ER_DHX,LABEL\nfever,1\ncough,2\n")
    _write(tmp_path / "empty.csv", "ER_DHX\n")
    _write(tmp_path / "ragged.csv", "ER_DHX\nfever\ncough\nrash, itch\n")  # found after two chunks were written
    fill = {"data_labels": tmp_path / "labels.csv", "notes": notes_csv, "tmp": tmp_path, "empty": tmp_path / "empty.csv",
            "ragged": tmp_path / "ragged.csv"}
    argv = [a.format(**fill) for a in argv]
    assert main([argv[0], "--model", str(run_dir), *argv[1:]]) == 2
    *progress, error = capsys.readouterr().err.strip().splitlines()  # a row found bad mid-file follows progress
    assert needle in error and error.startswith(f"dsgkd {argv[0]}: error: ")
    assert all(line.startswith("predict: ") for line in progress)
    assert not (tmp_path / "p.csv").exists() and not list(tmp_path.glob(".p.csv*"))


def test_a_directory_that_is_not_a_dsgkd_student_is_one_line(local_bert_dir, tmp_path, notes_csv, capsys):
    seeds = tmp_path / "seeds"
    (seeds / "seed_0" / "dsgkd" / "student").mkdir(parents=True)
    for model, needle in ((local_bert_dir, f"no {STUDENT_META}"), (seeds, "multi-seed run"),
                          (tmp_path / "nowhere", "no such model directory")):
        assert main(["predict", "--model", str(model), "--data", str(notes_csv), "--out", str(tmp_path / "p.csv")]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_a_cp949_file_is_read_with_its_encoding(run_dir, tmp_path):
    data = _write(tmp_path / "kr.csv", "ID,ER_DHX\n1,열 fever\n2,기침 cough\n", "cp949")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(run_dir), "--data", str(data), "--encoding", "cp949", "--id-col", "ID",
                 "--out", str(out)]) == 0
    preds = pd.read_csv(out)
    np.testing.assert_allclose(preds["prob"], predict_probs(load_student(run_dir), ["열 fever", "기침 cough"]))
