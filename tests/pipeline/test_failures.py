"""How `dsgkd train` ends when it cannot do what was asked: a device this machine lacks (before any data is
read), a loss that turned NaN or inf (one line saying where and which part, exit 3, nothing in --out), and
notes with no term to distil (one warning line, once per run)."""
import csv
import pickle
import random

import pytest
import torch

from dsgkd.cli import main
from dsgkd.errors import NonFiniteLossError

FAST = ["--epochs", "1", "--batch-size", "16", "--max-length", "64", "--n-bootstrap", "20"]
PAIR = ["--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map", "uniform"]


def train_args(data, out, *extra):
    return ["train", "--data", str(data), "--text-col", "ER_DHX", "--label-col", "LABEL", *FAST, *PAIR,
            "--out", str(out), *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("device, needle", [
    ("tpu", "train.device: unknown device 'tpu'; expected auto, cpu, cuda, cuda:N or mps"),
    ("cuda", "train.device cuda: not on this machine (0 CUDA device(s)"),
    ("cuda:3", "train.device cuda:3: not on this machine"),
    ("mps", "train.device mps: MPS is not available"),
])
@pytest.mark.parametrize("seeds", [[], ["--seeds", "0,1"]])
def test_a_missing_device_is_one_line_before_the_data_is_read(tmp_path, capsys, monkeypatch, device, needle, seeds):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(train_args(tmp_path / "not-there.csv", out, "--device", device, *seeds)) == 2
    err = one_error_line(capsys)
    assert needle in err and "not-there.csv" not in err  # the device was checked first
    assert not out.exists()


@pytest.mark.parametrize("extra, where, part, hint", [
    (["--lr-encoder", "1e12", "--lr-head", "1e12"], "at epoch 1 step ", "task CE nan", "lower --lr-encoder/--lr-head"),
    (["--alpha", "1e39"], "at epoch 1 step 1 ", "their weighted sum overflows", "lower the KD weights"),
    (["--alpha", "1e39", "--seeds", "0,1"], "at epoch 1 step 1 ", "hidden KD", "--alpha/--beta/--gamma"),
])
def test_a_diverging_run_ends_in_one_line_exit_3_and_leaves_nothing(notes_csv, tmp_path, capsys, extra, where, part,
                                                                    hint):
    runs = tmp_path / "runs"
    assert main(train_args(notes_csv, runs / "run", *extra)) == 3
    err = one_error_line(capsys)
    assert err.startswith("dsgkd train: error: non-finite loss (") and where in err, err
    assert part in err and hint in err
    assert not list(runs.iterdir())  # no run, no staging directory


def test_the_non_finite_error_keeps_its_parts_through_pickling():
    """Ray ships a worker's exception to the trial by pickling; a plain message must rebuild it too."""
    e = NonFiniteLossError.at(2, 7, float("nan"), {"ce": 0.7, "hidden": float("inf"), "attention": float("nan")})
    back = pickle.loads(pickle.dumps(e))
    assert (back.epoch, back.step, back.parts, str(back)) == (2, 7, ("hidden", "attention"), str(e))
    assert "hidden KD inf, attention KD nan" in str(e) and "task CE" not in str(e)
    assert str(NonFiniteLossError("as the trial re-raises it")) == "as the trial re-raises it"


@pytest.fixture(scope="module")
def korean_only(tmp_path_factory):
    """Notes with no Latin-script word: the default selector finds nothing to distil."""
    rng = random.Random(0)
    words = ["열", "기침", "구토", "설사", "복통", "두통", "호소", "내원", "전부터", "심함", "없음", "보호자"]
    path = tmp_path_factory.mktemp("korean") / "notes.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ER_DHX", "LABEL"])
        for i in range(60):
            w.writerow([f"{i % 7 + 1}일 " + " ".join(rng.choice(words) for _ in range(8)), i % 2])
    return path


def test_no_term_to_distil_is_one_warning_line_per_run(korean_only, tmp_path, capsys):
    assert main(train_args(korean_only, tmp_path / "seeds", "--seeds", "0,1")) == 0  # the seed-1 arm re-prepares
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "term to distil" in ln]
    assert lines == ["warning: only 0 of 42 training notes (0.0%) have a term to distil with selector 'latin'; "
                     "the KD terms will be near zero"]


def test_notes_with_terms_or_kd_off_give_no_warning(notes_csv, korean_only, tmp_path, capsys):
    assert main(train_args(notes_csv, tmp_path / "a", "--device", "cpu")) == 0  # a device that is here
    assert main(train_args(korean_only, tmp_path / "b", "--alpha", "0", "--beta", "0")) == 0
    assert "term to distil" not in capsys.readouterr().err
