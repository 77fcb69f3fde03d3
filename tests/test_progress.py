"""Progress: a bar with an ETA on a terminal, a few plain lines in a log, nothing when asked."""
import sys

import pytest

from dsgkd import progress
from dsgkd.progress import Progress


def test_a_log_gets_a_line_every_tenth_and_no_line_per_item(monkeypatch, capsys):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    with Progress(1000, "epoch 1/3", "steps") as bar:
        for _ in range(1000):
            bar.update()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10 and all(line.startswith("epoch 1/3: ") for line in lines)
    assert "1000/1000 steps (100%)" in lines[-1] and "ETA 0 s" in lines[-1] and "\r" not in "".join(lines)


def test_a_slow_log_gets_a_line_every_30_seconds(monkeypatch, capsys):
    clock = iter(range(0, 10_000, 31))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    monkeypatch.setenv(progress.ENV, "lines")
    with Progress(1000, "teacher cache: train notes", "batches") as bar:
        for _ in range(3):
            bar.update()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "3/1000 batches (0%)" in lines[-1]


def test_a_terminal_gets_a_bar_with_rate_and_eta(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = Progress(50, "epoch 2/5", "steps")
    from tqdm import tqdm

    assert isinstance(bar.impl, tqdm) and bar.impl.total == 50
    bar.update(10)
    shown = str(bar.impl)
    bar.close()
    assert "epoch 2/5" in shown and "10/50" in shown and "<" in shown and "steps/s" in shown  # elapsed<remaining, rate


@pytest.mark.parametrize("value", ["0", "off"])
def test_off_prints_nothing(monkeypatch, capsys, value):
    monkeypatch.setenv(progress.ENV, value)
    with Progress(10, "x") as bar:
        for _ in range(10):
            bar.update()
    assert capsys.readouterr().err == ""
    assert isinstance(Progress(10, "x", enabled=False).impl, progress.Off)


def test_the_cli_silences_per_model_bars_but_keeps_hub_download_bars(tmp_path):
    import huggingface_hub.utils
    import transformers

    from dsgkd.cli import main

    transformers.logging.enable_progress_bar()
    assert main(["predict", "--model", str(tmp_path / "none"), "--data", str(tmp_path / "none.csv"),
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert not transformers.logging.is_progress_bar_enabled()
    assert not huggingface_hub.utils.are_progress_bars_disabled()
