"""Real local Ray searches on the offline stand-ins: OptunaSearch + ASHA over Ray Train DDP trials, the
Optuna study on disk, the shared teacher cache, a diverging trial, and SIGKILL + --resume.

One Ray instance serves the whole module (starting Ray costs ~5 s, each trial ~15 s before its first
step on a 2-core machine), so the searches are few and small.
"""
import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import ray
import yaml

from dsgkd.errors import UserError
from dsgkd.report.run_model import load_run
from dsgkd.core.layer_maps import is_valid
from dsgkd.search.local_ray import local_ray
from dsgkd.search.tune import search
from dsgkd.search.space import space_from_dict
from dsgkd.search.study import read_record
from dsgkd.core.teacher.signal import FORWARD_LOG_ENV

ROOT = Path(__file__).resolve().parents[2]
DEPTHS = {"kmbert-tiny": 4, "xlmr-tiny": 4, "kobert-tiny": 2}
DIVERGE = 1.0e39  # alpha × hidden loss overflows float32: the loss is inf at the first step on every rank
CLI = [sys.executable, "-m", "dsgkd.cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray for this module; teacher forward passes of every process are logged to one file."""
    log = tmp_path_factory.mktemp("forwards") / "teacher_forwards.log"
    os.environ[FORWARD_LOG_ENV] = str(log)  # Ray's workers inherit the environment of the raylet
    with local_ray(num_cpus=2) as address:
        yield {"address": address, "forward_log": log}
    os.environ.pop(FORWARD_LOG_ENV, None)


@pytest.fixture(scope="module")
def notes(notes_csv):
    return notes_csv


def base(notes, epochs=3):
    return {"data": {"path": str(notes), "text_col": "ER_DHX", "label_col": "LABEL", "group_col": "PT_ID"},
            "train": {"epochs": epochs, "batch_size": 16, "max_length": 64, "patience": epochs}}


@pytest.fixture(scope="module")
def ddp_search(cluster, notes, tmp_path_factory):
    """4 trials, 2 gloo DDP workers each: the paper's defaults first, then Optuna's picks over two pairs;
    alpha DIVERGE makes a trial's loss infinite."""
    space = space_from_dict({
        "base": base(notes),
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"},
                  {"teacher": "kmbert-tiny", "student": "kobert-tiny"}],
        "params": {"train.lr_encoder": {"type": "float", "low": 1.0e-4, "high": 1.0e-3, "log": True},
                   "distill.alpha": {"type": "categorical", "choices": [0.6, 0.3, DIVERGE]},
                   "distill.beta": {"type": "float", "low": 0.0, "high": 0.5}},
        "layer_maps": ["all", "uniform", "last_k:2", "first_last"],
        "budget": {"num_samples": 4, "workers_per_trial": 2, "trial_retries": 1},
        "asha": {"grace_period": 2, "reduction_factor": 2},
        "seed": 3, "startup_trials": 10,  # random draws throughout: seed 3 samples the diverging alpha
    })
    run = tmp_path_factory.mktemp("runs") / "ddp"
    started = time.time()
    grid = search(space, run)
    return {"grid": grid, "run": run, "space": space, "seconds": time.time() - started}


def test_layout_and_study_on_disk(ddp_search):
    run, space = ddp_search["run"], ddp_search["space"]
    for name in ("space.yaml", "optuna.db", "tune", "train", "teacher_cache/index.json"):
        assert (run / name).exists(), name
    study = optuna.load_study(study_name=read_record(run).study_name, storage=f"sqlite:///{run / 'optuna.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 4
    first = trials[0].params  # the paper's defaults
    assert first["distill.alpha"] == 0.6 and first["distill.beta"] == 0.2
    assert first["layer_map/kmbert-tiny>xlmr-tiny"] == "all"
    for t in trials:
        pair = t.params["pair"]
        assert {"train.lr_encoder", "distill.alpha", "distill.beta", f"layer_map/{pair}"} <= set(t.params)
        teacher, student = pair.split(">")
        assert is_valid(t.params[f"layer_map/{pair}"], DEPTHS[teacher], DEPTHS[student])
    assert yaml.safe_load((run / "space.yaml").read_text())["budget"]["num_samples"] == space.budget.num_samples
    # the study holds each trial's best epoch (what analysis and export rank by), not its last report
    finished = [r for r in ddp_search["grid"] if r.error is None]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.value for t in done) == pytest.approx(sorted(r.metrics_dataframe["val_auroc"].max() for r in finished))


def test_ddp_trials_report_every_epoch(ddp_search):
    grid = ddp_search["grid"]
    ok = [r for r in grid if r.error is None]
    assert len(ok) >= 3
    run = load_run(ddp_search["run"], with_study=False)
    kept = {t.trial_id for t in [t for t in run.ranked() if t.finished and t.kd_on][:2]}  # budget.keep_checkpoints
    for r in ok:
        df = r.metrics_dataframe
        assert set(df["workers"]) == {2}
        assert list(df["epoch"]) == list(range(1, len(df) + 1))
        assert df["val_auroc"].notna().all()
        assert df["val_auroc"].iloc[df["best_epoch"].iloc[-1] - 1] == df["val_auroc"].max()
        last = Path(df["checkpoint_path"].iloc[-1])  # Train's latest, in RUN/train/train-<id>/
        assert last.parent == ddp_search["run"] / "train" / f"train-{r.metrics['trial_id']}"
        if r.metrics["trial_id"] not in kept:  # finished outside the best 2: its Train run keeps no checkpoint
            assert not [c for c in last.parent.glob("checkpoint_*") if c.is_dir()]  # the snapshot .json stays
            assert sum(f.stat().st_size for f in last.parent.rglob("*") if f.is_file()) < 100_000
            continue
        assert torch.load(last / "optim.pt", weights_only=True)["best"]  # the best epoch's state dict
        assert json.loads((last / "state.json").read_text())["best_epoch"] == df["best_epoch"].iloc[-1]
    assert len(kept) == 2 and len(ok) > len(kept)
    assert max(len(r.metrics_dataframe) for r in ok) == 3  # the best trial ran to max_t


def test_diverging_trial_fails_with_its_reason(ddp_search):
    grid = ddp_search["grid"]
    for r in grid:
        alpha = r.config["distill.alpha"]
        if alpha == DIVERGE:
            assert r.error is not None and "non-finite loss (inf) at epoch 1 step 1" in str(r.error)
        else:
            assert r.error is None
    assert any(r.config["distill.alpha"] == DIVERGE for r in grid), "pick a seed that samples the diverging alpha"


def test_teacher_runs_once_per_search_with_the_cache(ddp_search, cluster):
    run = ddp_search["run"]
    index = json.loads((run / "teacher_cache" / "index.json").read_text())
    assert len(index) == 1  # one teacher, one data set: one cache for both pairs
    meta = json.loads((run / "teacher_cache" / next(iter(index.values())) / "meta.json").read_text())
    lines = cluster["forward_log"].read_text().split()
    passed = sum(int(n) for n in lines[1::2])
    assert passed == meta["n_notes"]["train"]  # every KD note through the teacher once, no trial ran it


def test_set_up_tasks_write_the_note_stores_every_trial_reads(ddp_search):
    """One store per KD pool and per validation set of each pair's student, written by the set-up tasks (their
    peaks recorded apart from the trials'); a trial that encoded its notes itself would have added a store."""
    run = ddp_search["run"]
    stores = sorted(p.name for p in (run / "note_store").iterdir())
    assert len(stores) == 4, stores  # two students: a pool store and a validation store each
    setup = json.loads((run / "setup_memory.json").read_text())
    assert len(setup["note_stores"]) == 2 and len(setup["teacher_caches"]) == 1
    assert all(task["peak_rss_mb"] > 100 and task["notes"] > 0 for task in setup["note_stores"])
    assert all(task["phase"] == "search" and task["at"] for tasks in setup.values() for task in tasks)


def test_bad_space_exits_before_ray(tmp_path, notes):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: [{teacher: kmbert-tiny, student: xlmr-tiny}]\nbudget: {num_sample: 3}\n")
    proc = subprocess.run([*CLI, "search", "--space", str(bad), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "budget.num_sample: unknown key" in proc.stderr
    assert "Ray" not in proc.stdout + proc.stderr and not (tmp_path / "run").exists()


def test_bad_space_raises_before_ray_in_process(tmp_path, notes):
    was_up = ray.is_initialized()
    raw = {"base": base(notes), "pairs": [{"teacher": "kmbert-tiny", "student": "kobert-tiny"}], "layer_maps": ["all"]}
    with pytest.raises(UserError, match="no layer map"):
        search(space_from_dict(raw), tmp_path / "run")
    assert ray.is_initialized() == was_up and not (tmp_path / "run").exists()


class _Stop(Exception):
    pass


@pytest.mark.parametrize("floor", [0.0, 0.6])
def test_search_says_the_restart_floor_does_not_redraw_trials(tmp_path, notes, monkeypatch, capsys, floor):
    """A floor in the search's base is honoured by the exported config's runs, not by trials: the search says so
    once, before Ray starts, and says nothing without one."""
    def stop(*args, **kwargs):
        raise _Stop
    monkeypatch.setattr("dsgkd.search.tune.run_lock", stop)
    raw = {"base": {**base(notes), "train": {**base(notes)["train"], "restart_floor": floor}},
           "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}], "layer_maps": ["all"]}
    with pytest.raises(_Stop):
        search(space_from_dict(raw), tmp_path / "run")
    said = [line for line in capsys.readouterr().out.splitlines() if "restart_floor" in line]
    assert said == ([] if not floor else
                    ["[dsgkd] base.train.restart_floor 0.6 does not redraw trials (a stalled trial is a poor draw "
                     "the sampler learns from); it applies when the exported config is trained"])


def _trial_status(run: Path) -> dict[str, str]:
    """Trial id → status as Tune last saved it (what a restore starts from)."""
    status = {}
    for f in sorted(glob.glob(str(run / "tune" / "experiment_state-*.json"))):
        try:
            data = json.loads(Path(f).read_text())
        except (OSError, json.JSONDecodeError):  # being rewritten
            continue
        status.update({t["trial_id"]: t["status"] for t in (json.loads(row[0]) for row in data["trial_data"])})
    return status


def test_sigkill_then_resume_keeps_finished_trials(cluster, notes, tmp_path):
    raw = {"base": base(notes), "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
           "params": {"distill.alpha": {"type": "float", "low": 0.0, "high": 1.0}},
           "layer_maps": ["all", "last_k:2"], "budget": {"num_samples": 3, "max_concurrent": 1, "keep_checkpoints": 0},
           "asha": {"grace_period": 3}}
    space_file, run = tmp_path / "space.yaml", tmp_path / "resumable"
    space_file.write_text(yaml.safe_dump(raw))
    log = tmp_path / "search.log"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}" if importlib.util.find_spec("mlflow") else None  # dev extra
    with log.open("w") as out:
        proc = subprocess.Popen([*CLI, "search", "--space", str(space_file), "--out", str(run),
                                 "--address", cluster["address"], *(["--mlflow-uri", tracking] if tracking else [])],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 400
    while "TERMINATED" not in _trial_status(run).values() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, "the search ended before it could be killed:\n" + log.read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {t for t, s in _trial_status(run).items() if s == "TERMINATED"}
    assert finished and len(finished) < 3
    for t in finished:  # keep_checkpoints 0: dropped as each finished, before the search was killed
        assert not glob.glob(str(run / "tune" / f"trial_{t}" / "checkpoint_*"))
    text = log.read_text()  # what a user watching the search saw: progress, and no library debug output
    assert "Trial status:" in text
    for noise in ("LOAD_GLOBAL", "RETURN_VALUE",  # dill's disassembly, logged by Ray Train's print patch
                  "Reporting training result", "Checkpoint successfully created", "LOAD REPORT"):
        assert noise not in text, noise

    grid = search(None, run, resume=True)
    assert len(grid) == 3 and all(r.error is None for r in grid)
    assert finished <= {r.metrics["trial_id"] for r in grid}
    for r in grid:  # epochs reported once each: finished trials kept, the in-flight one resumed, none restarted
        epochs = list(r.metrics_dataframe["epoch"])
        assert epochs == sorted(set(epochs)) and epochs[-1] == 3
    study = optuna.load_study(study_name=read_record(run).study_name, storage=f"sqlite:///{run / 'optuna.db'}")
    assert len(study.trials) == 3
    # single-worker trials trained inside the Tune trial: no Train run, Tune's checkpoints, the in-flight trial
    # resumed from its own (never dropped while it ran), every finished trial's dropped
    assert not (run / "train").exists()
    assert all(not glob.glob(f"{r.path}/checkpoint_*") and (Path(r.path) / "result.json").is_file() for r in grid)
    assert all(set(r.metrics_dataframe["workers"]) == {1} for r in grid)
    if tracking:  # --resume logged to the MLflow store the search started with; the resumed trial went on in its run
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking)
        runs = client.search_runs([client.get_experiment_by_name(run.name).experiment_id])
        assert sorted(m.data.tags["trial_id"] for m in runs) == sorted(r.metrics["trial_id"] for r in grid)
        for m in runs:
            assert m.info.status == "FINISHED"
            assert sorted(h.step for h in client.get_metric_history(m.info.run_id, "val_auroc")) == [1, 2, 3]


def test_asha_rungs_are_rebuilt_from_recorded_results(tmp_path):
    from types import SimpleNamespace

    import pyarrow.fs

    from dsgkd.search.asha import ResumableASHA

    def trial(trial_id, rows):
        (tmp_path / trial_id).mkdir()
        (tmp_path / trial_id / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epo')
        storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(), trial_dir_name=trial_id,
                                  trial_fs_path=str(tmp_path / trial_id))
        return SimpleNamespace(trial_id=trial_id, storage=storage)

    def scheduler():
        s = ResumableASHA(time_attr="epoch", max_t=4, grace_period=1, reduction_factor=2, stop_last_trials=False)
        s.set_search_properties("val_auroc", "max")
        return s

    restored = scheduler()  # the finished trial's epochs are replayed into the rungs on restore
    restored.on_trial_add(None, trial("done", [{"epoch": 1, "val_auroc": 0.9}, {"epoch": 2, "val_auroc": 0.92}]))
    weak = trial("weak", [])
    restored.on_trial_add(None, weak)
    assert restored.on_trial_result(None, weak, {"epoch": 1, "val_auroc": 0.5}) == "STOP"

    fresh = scheduler()  # without a replay the weak trial would sail through the first rung
    fresh.on_trial_add(None, weak)
    assert fresh.on_trial_result(None, weak, {"epoch": 1, "val_auroc": 0.5}) == "CONTINUE"


def test_two_objective_search_tells_optuna_the_second_at_the_primary_best_epoch(cluster, notes, tmp_path, monkeypatch):
    """second_objective val_brier: a two-objective Optuna study whose every trial holds (best val_auroc, val_brier
    at that epoch) from its Tune results; ASHA decides on val_auroc alone; analysis writes the front."""
    from dsgkd.report.analysis import analyze
    from dsgkd.search.asha import ResumableASHA
    from dsgkd.search.space import flatten_params

    decided_on = set()
    on_result = ResumableASHA.on_trial_result

    def spy(self, controller, trial, result):
        decided_on.add(self._metric)
        return on_result(self, controller, trial, result)

    monkeypatch.setattr(ResumableASHA, "on_trial_result", spy)
    space = space_from_dict({
        "base": base(notes), "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
        "params": {"distill.alpha": {"type": "float", "low": 0.0, "high": 1.0},
                   "train.lr_encoder": {"type": "float", "low": 1.0e-4, "high": 1.0e-3, "log": True}},
        "layer_maps": ["all", "last_k:2"], "budget": {"num_samples": 3}, "second_objective": "val_brier", "seed": 1,
    })
    run = tmp_path / "two"
    grid = search(space, run)
    assert decided_on == {"best_val_auroc"}
    study = optuna.load_study(study_name=read_record(run).study_name, storage=f"sqlite:///{run / 'optuna.db'}")
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    expected = {}
    for r in grid:
        df = r.metrics_dataframe.set_index("epoch")
        for _, row in df.iterrows():  # every report carries the second objective at the best epoch so far
            assert row["val_brier_at_best"] == df.at[int(row["best_epoch"]), "val_brier"]
        best = df["val_auroc"].idxmax()
        params = dict(flatten_params(r.config))
        expected[tuple(sorted(params.items()))] = [df.at[best, "val_auroc"], df.at[best, "val_brier"]]
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3
    for t in trials:
        assert t.values == pytest.approx(expected[tuple(sorted(t.params.items()))])

    analyze(run, plots=False)
    front = set(pd.read_csv(run / "analysis" / "pareto.csv")["optuna_trial"])
    sign = (1, -1)
    dominated = {a.number for a in trials for b in trials
                 if all(s * x <= s * y for s, x, y in zip(sign, a.values, b.values)) and a.values != b.values}
    assert front == {t.number for t in trials} - dominated
    assert "Pareto front (val_auroc max, val_brier min" in (run / "analysis" / "summary.md").read_text()
