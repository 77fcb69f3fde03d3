"""`dsgkd train --seeds --parallel N`: the runs side by side give what they give one after another."""
import json

import pytest

from dsgkd.config import RunConfig
from dsgkd.core.teacher.signal import FORWARD_LOG_ENV
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.train import run_seeds


def _run(notes_csv, **over):
    cfg = RunConfig().with_overrides({"data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL",
                                      "teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny", "train.epochs": 1,
                                      "train.max_length": 48, "eval.n_bootstrap": 10, **over})
    return resolve_run(cfg)


@pytest.mark.slow
def test_side_by_side_runs_match_the_serial_ones(notes_csv, tmp_path, capfd):
    run = _run(notes_csv)
    serial = run_seeds(run, tmp_path / "serial", [0, 1])
    capfd.readouterr()
    parallel = run_seeds(run, tmp_path / "parallel", [0, 1], workers=3)  # 4 runs, 3 at a time: one waits its turn
    out = capfd.readouterr()
    for arm in ("dsgkd", "control"):  # one thread per process instead of two: the same fit up to float order
        assert parallel["per_seed"][arm] == pytest.approx(serial["per_seed"][arm], abs=1e-4)
    assert parallel["auroc_dsgkd_minus_control"]["diff"] == pytest.approx(serial["auroc_dsgkd_minus_control"]["diff"],
                                                                        abs=1e-4)
    # every line a run printed carries its tag, so four runs on one terminal stay apart
    epoch_lines = [line for line in out.out.splitlines() if "val_auroc" in line]
    assert len(epoch_lines) == 4 and all(line.startswith("[seed ") for line in epoch_lines)
    assert {line.split("]")[0] for line in epoch_lines} == {"[seed 0 · dsgkd", "[seed 0 · control", "[seed 1 · dsgkd",
                                                           "[seed 1 · control"}
    assert json.loads((tmp_path / "parallel" / "seed_1" / "control" / "metrics.json").read_text())["seed"] == 1


@pytest.mark.slow
def test_seeds_forward_each_teacher_once_per_cache_group_not_per_step(notes_csv, tmp_path, monkeypatch):
    """Two seeds of an arm pair whose KD reads the pretrained teacher: one cache for both, built before the runs
    (live, each DSG-KD run would forward the pool once per epoch); training forwards no teacher."""
    log = tmp_path / "forwards.log"
    monkeypatch.setenv(FORWARD_LOG_ENV, str(log))
    run = _run(notes_csv, **{"distill.gamma": 0.0})
    run_seeds(run, tmp_path / "out", [0, 1])
    pool = json.loads((tmp_path / "out" / "seed_1" / "dsgkd" / "metrics.json").read_text())["data"]["n_train"]
    assert sum(int(line.split()[1]) for line in log.read_text().splitlines()) == pool  # no transfer notes here
    assert not (tmp_path / "out" / "teacher_cache").exists()


def test_a_failing_side_by_side_run_leaves_no_output(notes_csv, tmp_path):
    run = _run(notes_csv, **{"distill.alpha": 1e39})  # diverges at its first step, in a worker process
    with pytest.raises(Exception, match="non-finite"):
        run_seeds(run, tmp_path / "out", [0, 1], workers=2)
    assert not (tmp_path / "out").exists()


def test_parallel_needs_seeds(notes_csv, tmp_path, capsys):
    from dsgkd.cli import main

    assert main(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL", "--parallel", "2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--parallel trains the runs of --seeds side by side" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
