"""Trial tracking: TensorBoard event files in every trial directory of a real local search, one MLflow run per
trial in a SQLite tracking store (mlflow-skinny, in the dev extra), and the checks that run before Ray starts.

The kill-and-resume case (the resumed trial goes on in its own MLflow run) is part of
tests/search/test_search.py::test_sigkill_then_resume_keeps_finished_trials, which already pays for a kill.
"""
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from dsgkd.errors import UserError
from dsgkd.search.local_ray import local_ray
from dsgkd.search.space import space_from_dict
from dsgkd.search.loggers import EpochTBXLogger, searched_params
from dsgkd.search.tracking import load_target, mlflow_target, record_target
from dsgkd.search.tune import search

mlflow = pytest.importorskip("mlflow")  # the dev extra installs mlflow-skinny
ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "dsgkd.cli"]


def event_scalars(trial_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag → [(step, value)] from every TensorBoard event file under a trial directory (TFRecord framing:
    length, its CRC, the Event proto, its CRC), read with tensorboardX's protos (tensorboard is not a dependency)."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for f in sorted(trial_dir.rglob("events.out.tfevents*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            n = struct.unpack("<Q", data[i:i + 8])[0]
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def small_space(notes, **extra):
    return space_from_dict({
        "base": {"data": {"path": str(notes), "text_col": "ER_DHX", "label_col": "LABEL", "group_col": "PT_ID"},
                 "train": {"epochs": 2, "batch_size": 16, "max_length": 64, "patience": 2}},
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
        "params": {"distill.alpha": {"type": "float", "low": 0.1, "high": 1.0}},
        "layer_maps": ["all", "last_k:2"],
        "budget": {"num_samples": 2, "max_concurrent": 2},
        "asha": {"grace_period": 2}, "seed": 5, **extra})


@pytest.fixture(scope="module")
def tracked(notes_csv, tmp_path_factory):
    """One real local search of 2 trials × 2 epochs logging to a SQLite MLflow store."""
    tmp = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with local_ray(num_cpus=2):
        grid = search(small_space(notes_csv), tmp / "run", mlflow_uri=uri)
    return {"grid": grid, "run": tmp / "run", "uri": uri}


def test_every_trial_writes_tensorboard_events_per_epoch(tracked):
    grid = tracked["grid"]
    assert len(grid) == 2
    for r in grid:
        assert r.error is None
        scalars = event_scalars(Path(r.path))
        df = r.metrics_dataframe
        # stepped by epoch, one point per reported epoch, the values Tune recorded
        assert [s for s, _ in scalars["ray/tune/val_auroc"]] == list(df["epoch"]) == [1, 2]
        assert [v for _, v in scalars["ray/tune/val_auroc"]] == pytest.approx(list(df["val_auroc"]), abs=1e-6)
        assert "ray/tune/best_val_auroc" in scalars


def test_one_mlflow_run_per_trial_with_params_and_epoch_history(tracked):
    run, grid = tracked["run"], tracked["grid"]
    assert load_target(run).tracking_uri == tracked["uri"] and load_target(run).experiment == run.name
    client = mlflow.tracking.MlflowClient(tracked["uri"])
    experiment = client.get_experiment_by_name(run.name)  # default experiment: the run directory's name
    runs = {m.data.tags["trial_id"]: m for m in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(r.metrics["trial_id"] for r in grid)
    for r in grid:
        m = runs[r.metrics["trial_id"]]
        assert m.info.status == "FINISHED" and m.data.tags["dsgkd.run"] == str(run.resolve())
        pair = r.config["pair"]
        assert m.data.params == {"pair": pair, "layer_map": r.config["layer_map"][pair],
                                 "distill.alpha": str(r.config["distill.alpha"])}
        history = sorted(client.get_metric_history(m.info.run_id, "val_auroc"), key=lambda h: h.step)
        assert [h.step for h in history] == [1, 2]
        assert [h.value for h in history] == pytest.approx(list(r.metrics_dataframe["val_auroc"]))
        assert not client.list_artifacts(m.info.run_id)  # checkpoints stay in RUN/tune


def test_resuming_a_finished_search_adds_no_mlflow_run(tracked):
    """Tuner.restore unpickles the MLflow logger from RUN/tune/tuner.pkl: --resume needs no flag, logs nowhere new."""
    run = tracked["run"]
    with pytest.raises(UserError, match="started with sqlite"):
        search(None, run, resume=True, mlflow_uri="sqlite:///elsewhere.db")
    with local_ray(num_cpus=2):
        grid = search(None, run, resume=True)
    assert len(grid) == 2 and all(r.error is None for r in grid)
    client = mlflow.tracking.MlflowClient(tracked["uri"])
    assert len(client.search_runs([client.get_experiment_by_name(run.name).experiment_id])) == 2


def test_missing_mlflow_is_one_line_before_ray(notes_csv, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    was_up = ray.is_initialized()
    with pytest.raises(UserError, match=r"not installed: pip install 'dsgkd\[mlflow\]'"):
        search(small_space(notes_csv), tmp_path / "run", mlflow_uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert ray.is_initialized() == was_up and not (tmp_path / "run").exists()


def test_mlflow_checks_before_a_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match="needs --mlflow-uri"):
        mlflow_target(run, False, None, "exp")
    with pytest.raises(UserError, match="started with no MLflow"):
        mlflow_target(run, True, "sqlite:///m.db", None)
    assert mlflow_target(run, True, None, None) is None
    record_target(run, mlflow_target(run, False, f"sqlite:///{tmp_path / 'm.db'}", "exp"))
    assert mlflow_target(run, True, f"sqlite:///{tmp_path / 'm.db'}", None) == load_target(run)  # same: fine
    with pytest.raises(UserError, match="experiment exp"):
        mlflow_target(run, True, f"sqlite:///{tmp_path / 'm.db'}", "other")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(UserError, match="not installed"):
        mlflow_target(run, True, None, None)  # Tune would fail unpickling the MLflow logger


def test_relative_sqlite_uri_is_anchored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = mlflow_target(tmp_path / "run", False, "sqlite:///m.db", None)
    assert target.tracking_uri == f"sqlite:///{tmp_path / 'm.db'}" and target.experiment == "run"


def test_bad_tracking_uri_exits_before_ray(tmp_path, notes_csv):
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(small_space(notes_csv).model_dump(mode="json")))
    proc = subprocess.run([*CLI, "search", "--space", str(space), "--out", str(tmp_path / "run"),
                           "--mlflow-uri", "bogus://nowhere"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--mlflow-uri bogus://nowhere" in lines[0], proc.stderr
    assert "Ray" not in proc.stdout + proc.stderr and not (tmp_path / "run").exists()


def test_tensorboard_logger_steps_by_epoch_not_training_iteration(tmp_path):
    """Tune's training_iteration restarts when a trial is restored; the epoch goes on."""
    class Trial:
        trial_id, evaluated_params, local_path = "t", {}, str(tmp_path)

        def init_local_path(self):
            pass

    trial, logger = Trial(), EpochTBXLogger()
    logger.log_trial_result(1, trial, {"epoch": 3, "training_iteration": 1, "val_auroc": 0.7})
    logger.log_trial_end(trial)
    assert event_scalars(tmp_path)["ray/tune/val_auroc"] == [(3, pytest.approx(0.7))]


def test_searched_params_fold_the_pair_specific_layer_map():
    config = {"pair": "a>b", "layer_map": {"a>b": "all"}, "distill.alpha": 0.5}
    assert searched_params(config) == {"pair": "a>b", "layer_map": "all", "distill.alpha": 0.5}
