"""`dsgkd analyze` and `dsgkd export` on real Ray Tune + Optuna artifacts.

Default suite: a stand-in search. It is dsgkd.search's own Tuner (OptunaSearch on RUN/optuna.db, ASHA on
`epoch`, the trial directory names), but each trial reports engine-shaped metrics from a formula instead of
training, so in ~20 s the run holds known best epochs (not the last report), a trial ASHA cut at its first
rung, one the engine's patience stopped, one that failed, and KD-off controls. One real
`dsgkd train --config best.yaml` epoch closes the loop. The `slow` test does the same on a real search.
"""
import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import ray

from dsgkd.report.analysis import analyze
from dsgkd.report.run_model import load_run
from dsgkd.cli import main
from dsgkd.config import RunConfig
from dsgkd.data.emr import load_splits
from dsgkd.errors import UserError
from dsgkd.report.export import best_trial, export_best
from dsgkd.search.space import space_from_dict
from dsgkd.search.study import read_record

ROOT = Path(__file__).resolve().parents[2]
PNG = ("history", "parallel", "importance", "metric_vs_params", "pairs_box", "curves")
XLMR, KOBERT = "kmbert-tiny>xlmr-tiny", "kmbert-tiny>kobert-tiny"
FAILURE = "simulated failure: CUDA out of memory"


def base(notes, epochs):
    return {"data": {"path": str(notes), "text_col": "ER_DHX", "label_col": "LABEL"},
            "train": {"epochs": epochs, "batch_size": 16, "max_length": 64, "patience": 2},
            "eval": {"n_bootstrap": 50}}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, resources={"trial_driver": 2}, include_dashboard=True,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def standin_run(cluster, notes_csv, tmp_path_factory):
    """5 trials one at a time (so ASHA's cuts are deterministic): paper defaults, a KD-off control per pair,
    then two of Optuna's picks. The trainable is defined here so Ray pickles it by value (its workers cannot
    import this test module)."""
    from ray import tune

    from dsgkd.models.shape import model_depth
    from dsgkd.search.tune import _new_tuner
    from dsgkd.search.space import resolve_pairs

    def formula_trial(config):
        """Engine-shaped reports without training: a level set by the config, a curve that peaks at epoch 2
        (T < 2) or keeps rising, and the engine's patience of 2. The kobert KD-off control fails."""
        import math

        pair, temp = config["pair"], config["train.lr_encoder"] * 1e4  # 1 at the base's 1e-4
        alpha, beta = config["distill.alpha"], config["distill.beta"]
        if pair == "kmbert-tiny>kobert-tiny" and alpha == 0 and beta == 0:
            raise RuntimeError("simulated failure: CUDA out of memory")
        level = (0.62 + 0.25 * alpha + 0.1 * beta - 0.02 * math.log(temp) + 0.02 * pair.endswith("xlmr-tiny")
                 + 0.01 * (config["layer_map"][pair] == "all"))
        shape = [-0.08, 0.0, -0.01, -0.02, -0.03] if temp < 2 else [-0.08, -0.06, -0.04, -0.02, 0.0]
        best, best_epoch, bad = None, 0, 0
        for epoch, offset in enumerate(shape, 1):
            value = level + offset
            if best is None or value > best:
                best, best_epoch, bad = value, epoch, 0
            else:
                bad += 1
            tune.report({"epoch": epoch, "val_auroc": value, "val_loss": 1 - value, "best_epoch": best_epoch,
                         "best_val_auroc": best})
            if bad >= 2:
                return

    space = space_from_dict({
        "base": base(notes_csv, epochs=5),
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"},
                  {"teacher": "kmbert-tiny", "student": "kobert-tiny"}],
        "params": {"train.lr_encoder": {"type": "float", "low": 1.0e-4, "high": 4.0e-4, "log": True},
                   "distill.alpha": {"type": "categorical", "choices": [0.0, 0.3, 0.6]},
                   "distill.beta": {"type": "categorical", "choices": [0.0, 0.2, 0.4]}},
        "layer_maps": ["all", "last_k:2"],
        "budget": {"num_samples": 5, "trial_retries": 0},
        "asha": {"grace_period": 1, "reduction_factor": 2},
        "include_control": True, "seed": 1,
    })
    run = tmp_path_factory.mktemp("runs") / "standin"
    run.mkdir()
    (run / "space.yaml").write_text(space.dump_yaml())
    tuner = _new_tuner(space, resolve_pairs(space, model_depth), run, tune.with_resources(formula_trial, {"CPU": 1}),
                       1, None, loggers=[])
    tuner.fit()
    return run


@pytest.fixture(scope="module")
def analysed(standin_run):
    text = analyze(standin_run)
    return {"run": standin_run, "summary": text, "board": pd.read_csv(standin_run / "analysis" / "leaderboard.csv")}


def test_analysis_writes_every_file(analysed):
    out = analysed["run"] / "analysis"
    for name in ("leaderboard.csv", "leaderboard.md", "pairs.md", "importance.csv", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    for name in PNG:
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
        html = (out / "plots" / f"{name}.html").read_text()
        assert "plotly.min.js" in html and "cdn" not in html.lower(), name  # offline: the bundle beside it
    assert (out / "plots" / "plotly.min.js").stat().st_size > 1_000_000
    assert not list(analysed["run"].glob(".analysis*"))  # staging directories cleaned up
    assert "5 trials" in analysed["summary"] and "wrote" in analysed["summary"]


def test_leaderboard_scores_each_trial_at_its_best_reported_epoch(analysed):
    from ray.tune import ExperimentAnalysis

    board = analysed["board"].set_index("trial")
    experiment = ExperimentAnalysis(str(analysed["run"] / "tune"))
    frames = experiment.trial_dataframes
    assert len(board) == len(experiment.trials) == 5
    for t in experiment.trials:
        df, row = frames.get(t.trial_id, pd.DataFrame()), board.loc[t.trial_id]
        if len(df) == 0:
            assert pd.isna(row["val_auroc"]) and row["epochs"] == 0
            continue
        i = df["val_auroc"].idxmax()
        assert row["val_auroc"] == pytest.approx(df["val_auroc"][i])
        assert row["best_epoch"] == df["epoch"][i] == df["best_epoch"].iloc[-1]
        assert row["epochs"] == df["epoch"].max()
    ranked = board[board["val_auroc"].notna()]
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["val_auroc"].is_monotonic_decreasing
    assert set(board.columns) >= {"optuna_trial", "pair", "layer_map", "train.lr_encoder", "distill.alpha",
                                  "distill.beta", "max_epochs", "asha_stopped", "stopped_by", "status", "error"}


def test_stop_reasons_status_and_errors(analysed):
    board = analysed["board"]
    paper = board[(board["pair"] == XLMR) & (board["distill.alpha"] == 0.6) & (board["distill.beta"] == 0.2)
                  & (board["train.lr_encoder"] == 1.0e-4)].iloc[0]
    assert (paper["best_epoch"], paper["epochs"], paper["stopped_by"]) == (2, 4, "patience")  # 2 bad epochs
    assert paper["val_auroc"] == pytest.approx(0.82)  # epoch 2 of 0.74, 0.82, 0.81, 0.80
    control = board[(board["pair"] == XLMR) & (board["kd"] == "off")].iloc[0]
    assert (control["epochs"], control["stopped_by"], bool(control["asha_stopped"])) == (1, "asha", True)
    failed = board[board["status"] == "ERROR"].iloc[0]
    assert failed["pair"] == KOBERT and failed["kd"] == "off" and failed["stopped_by"] == "error"
    assert failed["error"] == f"RuntimeError: {FAILURE}"
    finished = board[board["status"] == "TERMINATED"]
    assert (finished["stopped_by"].isin(["asha", "patience", "max_epochs"])).all()
    assert (finished["asha_stopped"] == (finished["stopped_by"] == "asha")).all()


def test_optuna_numbers_pairs_and_importance(analysed):
    run, board = analysed["run"], analysed["board"]
    study = optuna.load_study(study_name=read_record(run).study_name, storage=f"sqlite:///{run / 'optuna.db'}")
    assert sorted(board["optuna_trial"]) == sorted(t.number for t in study.trials)
    by_number = {t.number: t for t in study.trials}
    for _, row in board.iterrows():
        params = by_number[row["optuna_trial"]].params
        assert params["pair"] == row["pair"] and params[f"layer_map/{row['pair']}"] == row["layer_map"]
        assert params["distill.alpha"] == row["distill.alpha"]
    pairs = (run / "analysis" / "pairs.md").read_text()
    xlmr_line = next(line for line in pairs.splitlines() if line.startswith(f"| {XLMR} "))
    control = board[(board["pair"] == XLMR) & (board["kd"] == "off")].iloc[0]
    assert f"{control['val_auroc']:.4f} ({control['trial']})" in xlmr_line  # the control, with its trial
    kobert_line = next(line for line in pairs.splitlines() if line.startswith(f"| {KOBERT} "))
    assert kobert_line.split("|")[7].strip() == "—"  # its control failed: no control value
    imp = pd.read_csv(run / "analysis" / "importance.csv")
    assert set(imp.columns) == {"param", "importance", "evaluator", "n_trials"}
    assert len(imp) and set(imp["param"]) <= {"pair", "layer_map", "train.lr_encoder", "distill.alpha",
                                              "distill.beta"}
    assert imp["importance"].sum() == pytest.approx(1.0) and (imp["evaluator"] == "fanova").all()


def test_running_search_and_half_written_results(analysed, tmp_path):
    """A live (or killed) search: a trial Tune saved as RUNNING, its result.json ending mid-line."""
    run = tmp_path / "live"
    shutil.copytree(analysed["run"], run, ignore=shutil.ignore_patterns("analysis"))
    board = analysed["board"]
    best_id = board.iloc[0]["trial"]
    state = sorted((run / "tune").glob("experiment_state-*.json"))[-1]
    data = json.loads(state.read_text())
    for row in data["trial_data"]:
        trial = json.loads(row[0])
        if trial["trial_id"] == best_id:
            trial["status"] = "RUNNING"
            row[0] = json.dumps(trial)
    state.write_text(json.dumps(data))
    with open(run / "tune" / f"trial_{best_id}" / "result.json", "a") as f:
        f.write('{"epoch": 9, "val_au')
    text = analyze(run, evaluator="mdi")
    live = pd.read_csv(run / "analysis" / "leaderboard.csv").set_index("trial")
    assert live.loc[best_id, "status"] == "RUNNING" and live.loc[best_id, "stopped_by"] == "running"
    assert live.loc[best_id, "epochs"] == board.iloc[0]["epochs"]  # the torn line is skipped
    assert "1 running" in text
    _, cfg, best, _ = export_best(run, tmp_path / "b.yaml")  # only finished trials are exported
    others = board[(board["status"] == "TERMINATED") & (board["trial"] != best_id) & (board["kd"] == "on")]
    assert best.trial_id == others.iloc[0]["trial"]


def test_export_round_trip_through_train(analysed, notes_csv, tmp_path, capsys):
    run, board = analysed["run"], analysed["board"]
    assert main(["export", str(run)]) == 0
    printed = capsys.readouterr().out
    best = board.iloc[0]
    assert f"trial {best['trial']}" in printed and "--seeds 0,1,2" in printed
    cfg = RunConfig.from_yaml(run / "best.yaml")
    p = cfg.provenance
    assert (p.run, p.trial_id, p.metric, p.epoch) == (str(run), best["trial"], "val_auroc", best["best_epoch"])
    assert p.value == pytest.approx(best["val_auroc"]) and p.dsgkd_version
    assert p.data_fingerprint == load_splits(cfg.data).fingerprint and p.seed == cfg.train.seed
    assert cfg.student.ref == best["pair"].split(">")[1] and cfg.distill.alpha == best["distill.alpha"]
    assert cfg.distill.layer_map == best["layer_map"] and cfg.distill.kd_on
    assert not list(run.glob(".best.yaml*"))
    out = tmp_path / "final"
    assert main(["train", "--config", str(run / "best.yaml"), "--epochs", "1", "--out", str(out)]) == 0
    assert RunConfig.from_yaml(out / "config.yaml").provenance == p
    assert json.loads((out / "metrics.json").read_text())["data"]["fingerprint"] == p.data_fingerprint
    # the artifacts still open with the tools users point at them
    from ray.tune import ExperimentAnalysis

    assert len(ExperimentAnalysis(str(run / "tune")).trials) == 5
    study = optuna.load_study(study_name=read_record(run).study_name, storage=f"sqlite:///{run / 'optuna.db'}")
    assert len(study.trials) == 5


def test_export_choice_rules(analysed):
    run = load_run(analysed["run"], with_study=False)
    best, control = best_trial(run)
    assert best.kd_on and control is None
    for t in run.trials:  # make the KD-off control the best trial
        if not t.kd_on and t.value is not None:
            t.value = 0.99
    best2, control2 = best_trial(run)
    assert best2 is best and control2 is not None and not control2.kd_on
    assert best_trial(run, allow_control=True)[0] is control2
    for t in run.trials:
        if t.kd_on:
            t.status = "ERROR"
    with pytest.raises(UserError, match="only KD-off control"):
        best_trial(run)
    for t in run.trials:
        t.status = "RUNNING"
    with pytest.raises(UserError, match="no finished trial"):
        best_trial(run)


def test_export_names_the_classes_of_the_re_run_student(analysed, tmp_path, capsys):
    run = analysed["run"]
    assert main(["export", str(run), "-o", str(tmp_path / "named.yaml"), "--label-names", "routine,urgent"]) == 0
    assert RunConfig.from_yaml(tmp_path / "named.yaml").data.label_names == ["routine", "urgent"]
    capsys.readouterr()
    assert main(["export", str(run), "-o", str(tmp_path / "bad.yaml"), "--label-names", "urgent"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.label_names" in err and len(err.splitlines()) == 1 and not (tmp_path / "bad.yaml").exists()


def test_bad_run_directory_is_one_line(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a search run" in err
    assert main(["export", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.yaml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "x.yaml").exists()


@pytest.mark.slow
def test_real_search_analyze_export_and_seeds(cluster, notes_csv, tmp_path):
    """A real search (Ray Train trials on the stand-ins), analysed and exported, then re-run on two seeds."""
    from ray.tune import ExperimentAnalysis

    from dsgkd.search.tune import search

    space = space_from_dict({
        "base": base(notes_csv, epochs=2),
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
        "params": {"distill.alpha": {"type": "categorical", "choices": [0.0, 0.3, 0.6]},
                   "distill.beta": {"type": "categorical", "choices": [0.0, 0.2]}},
        "layer_maps": ["all", "last_k:2"], "budget": {"num_samples": 3}, "include_control": True,
    })
    run = tmp_path / "real"
    grid = search(space, run)
    assert len(grid) == 3
    analyze(run)
    board = pd.read_csv(run / "analysis" / "leaderboard.csv").set_index("trial")
    for r in grid:
        df, row = r.metrics_dataframe, board.loc[r.metrics["trial_id"]]
        assert row["val_auroc"] == pytest.approx(df["val_auroc"].max())
        assert row["best_epoch"] == df["epoch"][df["val_auroc"].idxmax()] == df["best_epoch"].iloc[-1]
    for name in PNG[:2] + PNG[3:]:
        assert (run / "analysis" / "plots" / f"{name}.png").stat().st_size > 0
    assert main(["export", str(run)]) == 0  # trial 0 (the paper's defaults) is a finished KD-on trial
    cfg = RunConfig.from_yaml(run / "best.yaml")
    assert cfg.provenance.trial_id in board.index and len(ExperimentAnalysis(str(run / "tune")).trials) == 3
    assert main(["train", "--config", str(run / "best.yaml"), "--seeds", "0,1", "--epochs", "1",
                 "--out", str(tmp_path / "final")]) == 0
    assert (tmp_path / "final" / "summary.md").is_file()
