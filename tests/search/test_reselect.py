"""Noise-aware selection and bounded disk on a real local Ray search over the offline stand-ins.

One search serves the module: 4 single-worker trials (the paper's defaults, a KD-off control, two of
Optuna's picks) with `budget.reselect: {top_k: 2, seeds: 2}`, so the 2 best KD-on trials and the control are
re-run on 2 fresh seeds each (6 re-runs), and the checkpoints of the other finished trials are dropped. One
re-run is then struck from RUN/reselect.json and the search resumed, to show a resume redoes only that one.
"""
import json
import shutil
import statistics
import time
from pathlib import Path

import pytest
import yaml

from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.report.analysis import analyze
from dsgkd.report.export import export_best
from dsgkd.report.run_model import load_run
from dsgkd.search.local_ray import local_ray
from dsgkd.search.space import space_from_dict
from dsgkd.search.tune import search

PAIR = "kmbert-tiny>xlmr-tiny"


def raw_space(notes, **budget):
    return {
        "base": {"data": {"path": str(notes), "text_col": "ER_DHX", "label_col": "LABEL", "group_col": "PT_ID"},
                 "train": {"epochs": 2, "batch_size": 16, "max_length": 64, "patience": 2}},
        "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}],
        "params": {"distill.alpha": {"type": "categorical", "choices": [0.0, 0.3, 0.6]},
                   "distill.beta": {"type": "categorical", "choices": [0.0, 0.2]}},
        "layer_maps": ["all", "last_k:2"], "include_control": True, "asha": {"enabled": False}, "seed": 1,
        "budget": {"num_samples": 4, "reselect": {"top_k": 2, "seeds": 2}, **budget},
    }


@pytest.fixture(scope="module")
def cluster():
    with local_ray(num_cpus=2) as address:
        yield address


@pytest.fixture(scope="module")
def reselected(cluster, notes_csv, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "reselect"
    search(space_from_dict(raw_space(notes_csv)), run)
    first = json.loads((run / "reselect.json").read_text())
    struck = first["runs"][-1]
    on_disk = dict(first, runs=first["runs"][:-1])
    (run / "reselect.json").write_text(json.dumps(on_disk))
    results = {p: p.read_bytes() for p in (run / "tune").glob("trial_*/result.json")}
    started = time.time()
    search(None, run, resume=True)
    return {"run": run, "first": first, "struck": struck, "resumed": json.loads((run / "reselect.json").read_text()),
            "results": results, "resume_s": time.time() - started}


def test_reselect_reruns_the_k_best_on_s_fresh_seeds(reselected):
    run, state = reselected["run"], reselected["first"]
    trials = load_run(run, with_study=False)
    best_kd = [t for t in trials.ranked() if t.finished and t.kd_on][:2]
    candidates = [p for p in state["trials"] if p["role"] == "candidate"]
    assert [p["trial_id"] for p in candidates] == [t.trial_id for t in best_kd]  # export's own order
    assert [p["search_value"] for p in candidates] == pytest.approx([t.value for t in best_kd])
    control = [p for p in state["trials"] if p["role"] == "control"]
    assert len(control) == 1 and not next(t for t in trials.trials if t.trial_id == control[0]["trial_id"]).kd_on
    assert len(state["runs"]) == 3 * 2
    for p in state["trials"]:
        seeds = sorted(e["seed"] for e in state["runs"] if e["trial_id"] == p["trial_id"])
        assert seeds == p["seeds"] == [p["search_seed"] + 1, p["search_seed"] + 2]  # never the search's own seed
    for e in state["runs"]:
        assert set(e["val"]) and all(k.startswith("val_") for k in e["val"])  # validation only
        assert e["value"] == e["val"]["val_auroc"] and 1 <= e["epoch"] <= e["epochs"] <= 2
    assert "test" not in (run / "reselect.json").read_text()


def test_resume_redoes_only_the_missing_rerun(reselected):
    first, resumed, struck = reselected["first"], reselected["resumed"], reselected["struck"]
    assert resumed["runs"][:-1] == first["runs"][:-1]  # kept as they were, seconds included: not re-run
    redone = resumed["runs"][-1]
    assert (redone["trial_id"], redone["seed"]) == (struck["trial_id"], struck["seed"])
    assert redone["value"] == pytest.approx(struck["value"])  # same config, same seed: the same run
    run = reselected["run"]
    # the Tune part was done: restored, not run again
    assert {p: p.read_bytes() for p in (run / "tune").glob("trial_*/result.json")} == reselected["results"]


def test_export_picks_the_best_mean_and_records_the_seeds(reselected, tmp_path):
    run, state = reselected["run"], reselected["resumed"]
    path, cfg, best, _ = export_best(run, tmp_path / "best.yaml")
    means = {p["trial_id"]: sum(e["value"] for e in state["runs"] if e["trial_id"] == p["trial_id"]) / 2
             for p in state["trials"] if p["role"] == "candidate"}
    assert best.trial_id == max(means, key=means.get)
    r = RunConfig.from_yaml(path).provenance.reselect
    by_seed = {e["seed"]: e["value"] for e in state["runs"] if e["trial_id"] == best.trial_id}
    assert r.seeds == sorted(by_seed) and r.values == [by_seed[s] for s in r.seeds]
    # the sample SD of the re-runs (two seeds of a tiny model can tie at chance, so no `> 0`)
    assert r.mean == pytest.approx(means[best.trial_id]) and r.std == pytest.approx(statistics.stdev(r.values))
    assert cfg.provenance.value == pytest.approx(best.value)  # the search's own run, beside the re-runs


def test_export_follows_the_mean_not_the_search_value(reselected, tmp_path):
    """Make the search's runner-up the better trial on the fresh seeds: export must pick it."""
    run = tmp_path / "run"
    shutil.copytree(reselected["run"], run, ignore=shutil.ignore_patterns("analysis"))
    state = json.loads((run / "reselect.json").read_text())
    first, second = (p["trial_id"] for p in state["trials"] if p["role"] == "candidate")
    for e in state["runs"]:
        e["value"] = {first: 0.51, second: 0.52}.get(e["trial_id"], 0.40) + 0.001 * e["seed"]
    (run / "reselect.json").write_text(json.dumps(state))
    _, cfg, best, control = export_best(run, tmp_path / "a.yaml")
    assert best.trial_id == second and control is None
    assert cfg.provenance.reselect.values == pytest.approx([0.521, 0.522])

    for e in state["runs"]:  # now `first` has the better mean, but one of its re-runs failed: it is left out
        e["value"] = {first: 0.53, second: 0.52}.get(e["trial_id"], 0.40)
    failed = next(e for e in state["runs"] if e["trial_id"] == first)
    failed |= {"value": None, "error": "NonFiniteLossError: non-finite loss (nan) at epoch 1 step 3"}
    (run / "reselect.json").write_text(json.dumps(state))
    with pytest.warns(UserWarning, match=f"trial {first} left out: its re-run on seed {failed['seed']} failed"):
        assert export_best(run, tmp_path / "b.yaml")[2].trial_id == second

    state["runs"] = [e for e in state["runs"] if e is not failed]  # a re-run not done yet: no pick on a part
    (run / "reselect.json").write_text(json.dumps(state))
    with pytest.raises(UserError, match="1 of 6 re-runs are missing.*--resume"):
        export_best(run, tmp_path / "c.yaml")
    assert not (tmp_path / "c.yaml").exists()


def test_finished_trials_outside_the_best_k_keep_only_their_results(reselected):
    run = load_run(reselected["run"], with_study=False)
    kept = {t.trial_id for t in [t for t in run.ranked() if t.finished and t.kd_on][:2]}  # K = reselect.top_k
    sizes = {}
    for t in run.trials:
        assert t.finished
        checkpoints = list(t.path.glob("checkpoint_*"))
        sizes[t.trial_id] = sum(f.stat().st_size for f in t.path.rglob("*") if f.is_file())
        if t.trial_id in kept:
            assert len(checkpoints) == 1 and (checkpoints[0] / "optim.pt").is_file()  # the latest only
        else:
            assert checkpoints == []
            assert (t.path / "result.json").stat().st_size and (t.path / "params.json").is_file()
            assert sizes[t.trial_id] < 100_000
    assert len(kept) == 2 and len(sizes) == 4
    assert min(sizes[i] for i in kept) > 20 * max(s for i, s in sizes.items() if i not in kept)


def test_analysis_shows_the_seed_spread_and_what_was_kept(reselected):
    text = analyze(reselected["run"], plots=False)
    out = reselected["run"] / "analysis"
    table = (out / "reselect.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "rank_by_mean" not in line]
    assert len(rows) == 3 and sum("| candidate |" in r for r in rows) == 2 and "| control |" in table
    assert "reselect: the 2 best KD-on trials" in text and "rank_by_search" in text
    assert "disk: 2 of 4 finished trials keep a checkpoint" in text and "keep only their results" in text
    disk = (out / "checkpoints.md").read_text()
    assert disk.count("| yes |") == 2 and disk.count("| no |") == 2


def test_budget_checkpoints_default_to_reselect_k(notes_csv):
    three = raw_space(notes_csv)
    three["budget"]["reselect"]["top_k"] = 3
    assert space_from_dict(three).budget.kept_checkpoints == 3
    assert space_from_dict(raw_space(notes_csv, keep_checkpoints=0)).budget.kept_checkpoints == 0
    plain = raw_space(notes_csv)
    del plain["budget"]["reselect"]
    assert space_from_dict(plain).budget.kept_checkpoints == 2 and space_from_dict(plain).budget.reselect is None
    assert "reselect" not in yaml.safe_load(space_from_dict(plain).dump_yaml())["budget"]
    three["budget"]["reselect"]["top_k"] = 5
    with pytest.raises(UserError, match="reselect.top_k 5 > num_samples 4"):
        space_from_dict(three)


@pytest.mark.slow
def test_multi_worker_reruns_fit_a_torch_trainer(cluster, notes_csv, tmp_path):
    """A 2-worker trial re-run as a TorchTrainer driver task; its Train run is deleted once recorded."""
    raw = raw_space(notes_csv, num_samples=1, workers_per_trial=2)
    raw["budget"]["reselect"] = {"top_k": 1, "seeds": 1}
    raw["include_control"] = False
    run = tmp_path / "ddp"
    search(space_from_dict(raw), run)
    state = json.loads((run / "reselect.json").read_text())
    [entry] = state["runs"]
    assert entry["value"] == entry["val"]["val_auroc"] and entry["seed"] == 1
    assert not (run / "train" / f"reselect-{entry['trial_id']}-seed1").exists()
    assert list(Path(run / "train" / f"train-{entry['trial_id']}").glob("checkpoint_*"))  # kept: the best K
