"""The student in service: calibrated probabilities, `transformers.pipeline` giving dsgkd's answer, the card a hub
reads, `evaluate --plots`, and the ONNX export; bad input to each exits 2 in one line and writes nothing."""
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import ModelCard

from dsgkd.cli import main
from dsgkd.config import RunConfig
from dsgkd.core.metrics import binary_metrics
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.serve import STUDENT_META, load_student, predict_probs

NAMES = ["non-emergency", "emergency"]


@pytest.fixture(scope="module")
def run_dir(notes_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("service") / "run"
    assert main(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL",
                 "--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map", "uniform", "--epochs", "2",
                 "--batch-size", "16", "--max-length", "64", "--n-bootstrap", "50", "--label-names", ",".join(NAMES),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def splits(run_dir):
    return prepare(resolve_run(RunConfig.from_yaml(run_dir / "config.yaml"))).splits


def _sigmoid_logit(p, t):
    return 1 / (1 + np.exp(-np.log(p / (1 - p)) / t))


def test_the_temperature_is_fitted_stored_and_applied_and_auroc_does_not_move(run_dir, splits):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    meta = json.loads((run_dir / "student" / STUDENT_META).read_text())
    t, c = metrics["temperature"], metrics["calibration"]
    assert meta["temperature"] == t == c["temperature"] and 0 < t != 1 and meta["format"] == 2
    assert c["val"]["nll_after"] <= c["val"]["nll_before"]  # fitted on validation: never worse there
    assert {"ece_before", "ece_after", "brier_before", "brier_after"} <= set(c["test"])
    assert metrics["test"]["ece"]["value"] == pytest.approx(c["test"]["ece_after"])
    # the f1 rule on calibrated probabilities picks the same note as on raw ones: the threshold is its image
    assert metrics["threshold"] == pytest.approx(_sigmoid_logit(c["threshold_uncalibrated"], t), rel=1e-5)
    student = load_student(run_dir)
    texts, y = list(splits.test["text"]), np.array(splits.test["label"])
    calibrated = predict_probs(student, texts)
    student.meta["temperature"] = 1.0
    raw = predict_probs(student, texts)
    assert not np.allclose(raw, calibrated)
    before, after = binary_metrics(y, raw, 0.5), binary_metrics(y, calibrated, 0.5)
    assert before["auroc"] == after["auroc"] and before["auprc"] == after["auprc"]  # exactly
    preds = pd.read_csv(run_dir / "predictions.csv")
    np.testing.assert_allclose(preds["prob"], calibrated, atol=1e-6)


def test_a_student_from_before_calibration_loads_at_temperature_1(run_dir, tmp_path, notes_csv):
    student = tmp_path / "old"
    shutil.copytree(run_dir / "student", student)
    meta = json.loads((student / STUDENT_META).read_text())
    for key in ("temperature", "label_names"):
        meta.pop(key)
    (student / STUDENT_META).write_text(json.dumps({**meta, "format": 1}))
    old, new = load_student(student), load_student(run_dir)
    assert old.temperature == 1.0
    texts = list(pd.read_csv(notes_csv)["ER_DHX"][:20])
    z = np.log(predict_probs(old, texts))
    expected = 1 / (1 + np.exp(-(z - np.log1p(-np.exp(z))) / new.temperature))
    np.testing.assert_allclose(predict_probs(new, texts), expected, atol=1e-6)


@pytest.mark.parametrize("value", ["0", "-2.5", "NaN", "Infinity", '"warm"'])
def test_a_bad_stored_temperature_is_one_line_and_writes_nothing(run_dir, tmp_path, notes_csv, capsys, value):
    student = tmp_path / "student"
    shutil.copytree(run_dir / "student", student)
    text = (student / STUDENT_META).read_text()
    (student / STUDENT_META).write_text(re.sub(r'"temperature": [^,]+,', f'"temperature": {value},', text))
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(student), "--data", str(notes_csv), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{STUDENT_META}: temperature" in err and len(err.splitlines()) == 1 and not out.exists()


def test_the_card_s_pipeline_snippet_gives_dsgkd_predict_s_probabilities_and_labels(run_dir, notes_csv, tmp_path):
    """The snippet as the card prints it, run on 200 notes with nothing but transformers and numpy."""
    config = json.loads((run_dir / "student" / "config.json").read_text())
    assert config["id2label"] == {"0": NAMES[0], "1": NAMES[1]} and config["label2id"] == {NAMES[0]: 0, NAMES[1]: 1}
    notes = pd.read_csv(notes_csv).iloc[:200]
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(run_dir), "--data", str(notes_csv), "--out", str(preds)]) == 0
    ours = pd.read_csv(preds).iloc[:200]
    card = (run_dir / "student" / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert snippet.count('"path/to/student"') == 1 and "dsgkd" not in snippet.replace("dsgkd.json", "")
    scope: dict = {}
    exec(snippet.replace('"path/to/student"', repr(str(run_dir / "student"))), scope)
    probs, labels = scope["score"](list(notes["ER_DHX"]))
    np.testing.assert_allclose(probs, ours["prob"], atol=1e-6)
    # the threshold is one of the validation probabilities, and these notes include the validation notes: one
    # scored on the threshold itself may land on either side of it in float32 vs float64 (the card says so)
    threshold = json.loads((run_dir / "student" / STUDENT_META).read_text())["threshold"]
    clear = np.abs(ours["prob"].to_numpy() - threshold) > 1e-6
    assert clear.sum() >= 150  # a barely trained test student scores many notes alike; most are clear of it
    assert list(np.asarray(labels)[clear]) == [NAMES[v] for v in ours["label"][clear]]
    assert 0 < ours["label"].sum() < 200  # both labels occur, so the threshold is doing something


def test_the_card_carries_model_index_languages_dataset_and_calibration(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    card = ModelCard.load(run_dir / "student" / "README.md")
    dataset = f"dsgkd-notes-{metrics['data']['fingerprint']}"
    assert card.data.language == ["ko", "en"] and card.data.datasets == [dataset]
    results = {r.metric_name: r for r in card.data.eval_results}
    assert set(results) == {"auroc", "auprc", "f1", "precision", "recall", "specificity", "accuracy", "brier", "ece"}
    assert results["auroc"].metric_type == "roc_auc" and results["auroc"].dataset_split == "test"
    assert results["auroc"].metric_value == round(metrics["test"]["auroc"]["value"], 6)
    assert results["auroc"].dataset_type == dataset
    assert results["f1"].metric_args == {"threshold": metrics["threshold"], "temperature": metrics["temperature"]}
    c = metrics["calibration"]["test"]
    for needle in (f"**T = {metrics['temperature']:.6g}**", f"**{metrics['threshold']:.6g}**",
                   f"| test | {c['ece_before']:.4f} | {c['ece_after']:.4f} |", f"0 = `{NAMES[0]}`, 1 = `{NAMES[1]}`"):
        assert needle in card.text, needle


def test_evaluate_plots_draw_roc_pr_and_reliability_with_the_operating_point(run_dir, notes_csv, tmp_path):
    from matplotlib.image import imread

    from dsgkd.report.eval_plots import draw_eval_plots

    report, plots = tmp_path / "eval.json", tmp_path / "plots"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(notes_csv), "--n-bootstrap", "20",
                 "--json", str(report), "--plots", str(plots)]) == 0
    result = json.loads(report.read_text())
    assert sorted(p.name for p in plots.iterdir()) == ["pr.png", "reliability.png", "roc.png"]
    for png in plots.iterdir():
        img = imread(png)
        assert img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 0.05  # a picture, not a blank
    op, c = result["curves"]["operating_point"], result["curves"]
    assert op["threshold"] == result["threshold"] and sum(c["reliability"]["count"]) == result["n"]
    assert op["recall"] == pytest.approx(result["metrics"]["recall"]["value"])
    figs = draw_eval_plots(result)
    roc, pr, rel = (figs[k].axes[0] for k in ("roc", "pr", "reliability"))
    assert "false positive rate" in roc.get_xlabel() and "true positive rate" in roc.get_ylabel()
    assert "recall" in pr.get_xlabel() and "precision" in pr.get_ylabel()
    assert "predicted probability" in rel.get_xlabel() and rel.get_ylabel() == "fraction positive"
    marker = [line for line in roc.get_lines() if line.get_label().startswith("threshold")][0]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (op["fpr"], op["tpr"])
    marker = [line for line in pr.get_lines() if line.get_label().startswith("threshold")][0]
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (op["recall"], op["precision"])
    assert f"AUROC {result['metrics']['auroc']['value']:.3f}" in roc.get_title()
    assert [line.get_xdata()[0] for line in rel.get_lines() if line.get_label().startswith("threshold")] == [
        result["threshold"]]


def test_plots_into_a_file_is_one_line_and_writes_nothing(run_dir, notes_csv, tmp_path, capsys):
    taken = tmp_path / "plots.png"
    taken.write_text("mine")
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run_dir), "--data", str(notes_csv), "--json", str(report),
                 "--plots", str(taken)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--plots" in err and "is a file" in err and len(err.splitlines()) == 1
    assert taken.read_text() == "mine" and not report.exists()


@pytest.fixture(scope="module")
def onnx_dirs(run_dir):
    pytest.importorskip("onnxruntime")
    out = {}
    for kind in ("fp32", "int8"):
        out[kind] = run_dir.parent / f"onnx_{kind}"
        assert main(["export-onnx", "--model", str(run_dir), "--out", str(out[kind])]
                    + (["--int8"] if kind == "int8" else [])) == 0
    return out


def test_predict_and_evaluate_score_an_onnx_student_as_the_pytorch_one(run_dir, onnx_dirs, notes_csv, tmp_path):
    texts = list(pd.read_csv(notes_csv)["ER_DHX"])
    torch_p = predict_probs(load_student(run_dir), texts)
    onnx = load_student(onnx_dirs["fp32"])
    assert type(onnx.model).__name__ == "OnnxClassifier" and onnx.threshold == load_student(run_dir).threshold
    np.testing.assert_allclose(predict_probs(onnx, texts), torch_p, atol=1e-5)
    int8_p = predict_probs(load_student(onnx_dirs["int8"]), texts)
    assert np.abs(int8_p - torch_p).max() < 0.05 and not np.allclose(int8_p, torch_p, atol=1e-6)
    # int8 only within a few hundredths: a two-epoch tiny student's probabilities all sit that close to each other
    # and to the threshold, so its AUROC cost is measured on a trained student (benchmarks/onnx_predict.py)
    assert (onnx_dirs["int8"] / "model.onnx").stat().st_size < 0.5 * (onnx_dirs["fp32"] / "model.onnx").stat().st_size
    assert not list(onnx_dirs["int8"].glob("*.safetensors")) and "ONNX export" in (
        onnx_dirs["int8"] / "README.md").read_text()
    preds = tmp_path / "p.csv"
    assert main(["predict", "--model", str(onnx_dirs["fp32"]), "--data", str(notes_csv), "--out", str(preds)]) == 0
    np.testing.assert_allclose(pd.read_csv(preds)["prob"], torch_p, atol=1e-5)


def _no_tokenizer(onnx_dirs, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(onnx_dirs["fp32"], bare)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (bare / name).unlink(missing_ok=True)
    return bare


@pytest.mark.parametrize("case, needle", [
    ("not_a_student", f"no {STUDENT_META}"), ("already_onnx", "already an ONNX student"),
    ("out_not_empty", "already exists and is not empty"), ("no_tokenizer", "no tokenizer here"),
])
def test_bad_onnx_input_is_one_line_and_writes_nothing(run_dir, onnx_dirs, local_bert_dir, notes_csv, tmp_path, capsys,
                                                       case, needle):
    out = tmp_path / "out"
    if case == "out_not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    model = {"not_a_student": local_bert_dir, "already_onnx": onnx_dirs["int8"], "out_not_empty": run_dir}.get(case)
    if case == "no_tokenizer":
        argv = ["predict", "--model", str(_no_tokenizer(onnx_dirs, tmp_path)), "--data", str(notes_csv),
                "--out", str(out)]
    else:
        argv = ["export-onnx", "--model", str(model), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert (out / "keep.txt").read_text() == "mine" if case == "out_not_empty" else not out.exists()
    assert not list(tmp_path.glob(".out.*"))
