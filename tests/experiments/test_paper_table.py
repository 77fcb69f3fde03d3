"""The paper table without training (fake runs), but for one check of the engine: row configs differ only where
the row says they do, the KD-off control takes the searched row's optimiser steps over the same batches, the
statistics follow the predictions they are given (Holm over the pair's comparisons, primary first), the
held-out-term hook, and the frozen protocol that refuses to mix designs in one OUT."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dsgkd.config import RunConfig
from dsgkd.data.benchmark import DATA_SEEDS, REPORTED_SEEDS
from dsgkd.data.synthetic import generate_notes
from dsgkd.core.stats import holm
from dsgkd.core.terms import kd_off
from dsgkd.errors import UserError
from dsgkd.experiments import paper_table as pt
from dsgkd.search.space import load_space
from dsgkd.experiments import table_jobs
from dsgkd.experiments import table_stats as stats
from dsgkd.experiments.table_protocol import check_protocol, record_protocol
from dsgkd.experiments.table_render import render
from dsgkd.core.metrics import evaluate_with_ci

TINY = {"train": 60, "val": 60, "test": 80, "transfer": 50}


def _configs(teacher="kmbert-tiny", student="xlmr-tiny", **data):
    base = RunConfig().with_overrides({"teacher.ref": teacher, "student.ref": student, "teacher.finetune": True,
                                       "data.transfer_path": "t.csv", "train.epochs": 6, **data})
    searched = base.with_overrides({"distill.alpha": 0.3, "distill.gamma": 1.5, "distill.beta": 0.0,
                                    "distill.hidden_loss": "relational", "distill.layer_map": "last_k:2"})
    knowledge_free = searched.with_overrides({"teacher.random_init": True, "distill.hidden_loss": "mse"})
    wrong = searched.with_overrides({"teacher.ref": f"{teacher}@default:negative", "distill.gamma": 0.0})
    return base, searched, knowledge_free, wrong


@pytest.mark.parametrize("teacher, student, paper_map", [("kmbert-tiny", "xlmr-tiny", "all"),
                                                         ("biobert-tiny", "kobert-tiny", "uniform")])
def test_rows_differ_only_where_they_should(teacher, student, paper_map):
    base, searched, knowledge_free, wrong = _configs(teacher, student)
    rows = pt.row_configs(base, searched, knowledge_free, wrong)
    paper = rows["paper"].distill
    assert (paper.alpha, paper.beta, paper.gamma, paper.layer_map, paper.hidden_loss, paper.selector) == \
        (0.6, 0.2, 0.0, paper_map, "mse", "latin")
    assert not rows["paper"].teacher.finetune and rows["paper"].data.transfer_path is None
    assert rows["control"] == searched.with_overrides(kd_off())  # only the KD weights differ, transfer notes kept
    assert not rows["control"].distill.kd_on and rows["control"].data.transfer_path == "t.csv"
    assert rows["knowledge_free"] is knowledge_free
    assert all(cfg.train == base.train for cfg in rows.values())  # one training recipe for every row
    assert pt.shares_batches(rows["searched"], rows["control"]) and pt.shares_batches(searched, knowledge_free)
    assert not pt.shares_batches(rows["paper"], rows["control"])  # mixed: the control's batches hold transfer notes
    alongside = pt.row_configs(*(c.with_overrides({"train.transfer_batching": "alongside"}) for c in
                                 (base, searched, knowledge_free, wrong)))
    assert pt.shares_batches(alongside["paper"], alongside["control"])  # the same labelled batches, in order
    assert not pt.shares_batches(alongside["paper"], rows["control"])
    with pytest.raises(ValueError, match="random_init"):
        pt.row_configs(base, searched, searched, wrong)  # a knowledge-free row must come from the random-teacher search
    with pytest.raises(ValueError, match="twin"):
        pt.row_configs(base, searched, knowledge_free, searched)
    # the crossed rows swap the teacher and nothing else, so all four share the seed's batches
    assert rows["searched_wrong_teacher"] == searched.with_overrides({"teacher.ref": wrong.teacher.ref})
    assert rows["wrong_knowledge_true_teacher"] == wrong.with_overrides({"teacher.ref": teacher})
    crossed = [rows[r] for side in stats.COMPARISONS[stats.PRIMARY] for r in side]
    assert all(pt.shares_batches(crossed[0], cfg) for cfg in crossed)
    assert {cfg.distill.gamma for cfg in crossed} == {0.0, 1.5}


def test_the_control_takes_the_searched_rows_steps_over_the_same_batches(tmp_path, monkeypatch):
    """The matched-compute control: KD off, yet every optimiser step of the searched row, on the same notes in
    the same batches (transfer notes included), while only the searched row reads a teacher signal."""
    from dsgkd.core import engine
    from dsgkd.pipeline.prepare import prepare
    from dsgkd.pipeline.resolve import resolve_run

    data = pt.make_data(tmp_path, TINY)
    base, searched, knowledge_free, wrong = _configs(**{f"data.{k}": data[s] for k, s in (
        ("path", "train"), ("val_path", "val"), ("test_path", "test"), ("transfer_path", "transfer"))},
        **{"data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.epochs": 2, "train.batch_size": 16})
    searched = searched.with_overrides({"teacher.finetune": False, "distill.gamma": 0.0})
    rows = pt.row_configs(base, searched, knowledge_free, wrong)
    steps = {}

    def fake_step(stepper, group, where=(0, 0)):
        steps[arm] += [(where[0], batch["idx"].tolist(), stepper.signal is not None) for batch in group]
        return {"loss": 0.0}

    monkeypatch.setattr(engine.Stepper, "step", fake_step)
    for arm in ("searched", "control"):
        steps[arm] = []
        engine.fit(prepare(resolve_run(rows[arm])))
    n_kd_pool = TINY["train"] + TINY["transfer"]
    assert len(steps["searched"]) == len(steps["control"]) == 2 * -(-n_kd_pool // 16)
    assert [s[:2] for s in steps["searched"]] == [s[:2] for s in steps["control"]]
    assert max(i for _, idx, _ in steps["control"] for i in idx) == n_kd_pool - 1  # transfer notes in the batches
    assert all(kd for *_, kd in steps["searched"]) and not any(kd for *_, kd in steps["control"])


def test_alongside_the_control_is_a_plain_fine_tune_and_the_searched_row_adds_transfer_notes_beside(tmp_path,
                                                                                                   monkeypatch):
    """`train.transfer_batching: alongside`: the KD-off control takes exactly the steps of a run that never named
    transfer notes; the searched row takes the same labelled batches with the transfer notes beside them."""
    from dsgkd.core import engine
    from dsgkd.pipeline.prepare import prepare
    from dsgkd.pipeline.resolve import resolve_run

    data = pt.make_data(tmp_path, TINY)
    base, searched, knowledge_free, wrong = _configs(**{f"data.{k}": data[s] for k, s in (
        ("path", "train"), ("val_path", "val"), ("test_path", "test"), ("transfer_path", "transfer"))},
        **{"data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.epochs": 2, "train.batch_size": 16,
           "train.transfer_batching": "alongside"})
    searched = searched.with_overrides({"teacher.finetune": False, "distill.gamma": 0.0})
    rows = pt.row_configs(base, searched, knowledge_free, wrong)
    rows["plain"] = rows["control"].with_overrides({"data.transfer_path": None})
    steps = {}

    def fake_step(stepper, group, where=(0, 0)):
        steps[arm] += [(where[0], batch["idx"].tolist()) for batch in group]
        return {"loss": 0.0}

    monkeypatch.setattr(engine.Stepper, "step", fake_step)
    for arm in ("searched", "control", "plain"):
        steps[arm] = []
        engine.fit(prepare(resolve_run(rows[arm])))
    n = TINY["train"]
    assert steps["control"] == steps["plain"] and len(steps["control"]) == 2 * -(-n // 16)
    assert [(e, [i for i in idx if i < n]) for e, idx in steps["searched"]] == steps["control"]
    for epoch in (1, 2):
        beside = sorted(i for e, idx in steps["searched"] if e == epoch for i in idx if i >= n)
        assert beside == list(range(n, n + TINY["transfer"]))


# ---------------------------------------------------------------------------------------- fake runs
QUALITY = {"control": 0.3, "knowledge_free": 0.3, "searched": 1.0, "paper": 0.3, "wrong_knowledge": 0.3,
           "searched_wrong_teacher": 0.3, "wrong_knowledge_true_teacher": 1.0, "teacher": 0.5, "random_teacher": 0.2,
           "wrong_teacher": 0.4, "ngram": 0.4}


def _write_run(d, y, quality, rng):
    d.mkdir(parents=True, exist_ok=True)
    p = 1 / (1 + np.exp(-(quality * (2 * y - 1) + rng.normal(0, 1, len(y)))))
    pd.DataFrame({"label": y, "prob": p}).to_csv(d / "predictions.csv", index_label="row")
    test = evaluate_with_ci(y, p, 0.5, n_boot=20)
    (d / "metrics.json").write_text(json.dumps({"test": test, "val": {"auroc": test["auroc"]["value"]}}))


def _fake_pair(tmp_path, quality, seeds=(0, 1, 2), n=400):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    for row in (*stats.TRAINED_ROWS, *stats.TEACHER_ROWS):
        for s in seeds:
            _write_run(tmp_path / row / f"seed_{s}", y, quality[row], rng)
    _write_run(tmp_path / "ngram", y, quality["ngram"], rng)
    return pt.read_pair(tmp_path, list(seeds), (*stats.TRAINED_ROWS, *stats.TEACHER_ROWS), tmp_path / "ngram")


PAIRED = {name: name != "paper_vs_control" for name in stats.COMPARISONS}


def test_summary_schema_and_holm_over_the_pairs_comparisons(tmp_path):
    y, runs = _fake_pair(tmp_path, QUALITY, seeds=tuple(range(8)))
    s = stats.summarise_pair(y, runs, PAIRED, held_out=None, n_boot=300)
    assert set(s["rows"]) == {"control", "knowledge_free", "searched", "paper", "wrong_knowledge",
                              "searched_wrong_teacher", "wrong_knowledge_true_teacher", "teacher", "random_teacher",
                              "wrong_teacher", "ngram"}
    for row, m in s["rows"].items():
        assert {"auroc_mean", "auroc_std", "auroc_per_seed"} <= set(m)
        assert len(m["auroc_per_seed"]) == (1 if row == "ngram" else 8)
        assert m["auroc_mean"] == pytest.approx(np.mean(m["auroc_per_seed"]))
    assert s["rows"]["ngram"]["deterministic"] and s["rows"]["ngram"]["auroc_std"] == 0.0
    assert list(s["comparisons"])[0] == stats.PRIMARY
    assert {"searched_vs_knowledge_free", "searched_vs_control"} <= set(s["comparisons"])
    for c in s["comparisons"].values():
        assert {"diff", "ci", "p", "p_holm"} <= set(c) and len(c["ci"]) == 2
    p = {name: c["p"] for name, c in s["comparisons"].items()}
    assert {name: c["p_holm"] for name, c in s["comparisons"].items()} == holm(p)
    primary = s["comparisons"][stats.PRIMARY]
    # the exact sign-flip test over the 8 seeds: every seed of the teacher's rows above its twin's gives p = 2 / 2^8
    assert primary["test"] == "sign_flip_within_every_config" and primary["can_reject"]
    assert primary["p"] == pytest.approx(2 / 2 ** 8) and primary["p_within"] == pytest.approx([2 / 2 ** 8] * 2)
    assert primary["p_holm"] == pytest.approx(min(1.0, 4 * primary["p"]))
    # per seed, the mean of the two within-config differences, each config's own difference beside it
    auroc = {row: stats.per_seed_auroc(y, runs[row].probs) for row in stats.primary_rows()}
    by_config = {"searched": auroc["searched"] - auroc["searched_wrong_teacher"],
                 "wrong_knowledge_true_teacher": auroc["wrong_knowledge_true_teacher"] - auroc["wrong_knowledge"]}
    assert primary["by_config"] == pytest.approx({k: v.mean() for k, v in by_config.items()})
    assert primary["diff"] == pytest.approx(np.mean(list(by_config.values())))
    assert primary["a_mean"] - primary["b_mean"] == pytest.approx(primary["diff"])
    assert primary["mdd_80"] == pytest.approx(stats.planned_power(8)["mdd_80"])
    assert s["control_vs_ngram"]["test"] == "seeds_x_notes_bootstrap"  # no seeds to flip against the n-gram
    assert s["comparisons"]["paper_vs_control"]["p"] > 0.05 and not s["comparisons"]["paper_vs_control"]["paired_seeds"]
    assert s["held_out"] == {"note": "the test file has no HELD_OUT_TERM column: no held-out-term subset to report"}


def test_a_fluent_teacher_with_wrong_knowledge_that_does_as_well_is_not_a_win(tmp_path):
    """The negative world's failure under the old primary: a fluent teacher beats the random-init control whatever
    it knows. Its wrong-knowledge twin doing as well in both configs is no win for the teacher's knowledge."""
    tie = {**QUALITY, "searched_wrong_teacher": 1.0, "wrong_knowledge": 1.0}
    y, runs = _fake_pair(tmp_path / "tie", tie, seeds=tuple(range(8)))
    pairs = {"a>b": stats.summarise_pair(y, runs, PAIRED, held_out=None, n_boot=300)}
    stats.holm_across_pairs(pairs)
    c = pairs["a>b"]["comparisons"]
    assert c["searched_vs_control"]["p"] < 0.01 and c["searched_vs_knowledge_free"]["p"] < 0.01
    assert not stats.primary_holds(pairs["a>b"]) and abs(c[stats.PRIMARY]["diff"]) < 0.03
    # three seeds can never win: the sign-flip test's smallest p is 2 / 2^3, whatever the seeds show
    y, runs = _fake_pair(tmp_path / "three", QUALITY)
    few = {"a>b": stats.summarise_pair(y, runs, PAIRED, held_out=None, n_boot=300)}
    stats.holm_across_pairs(few)
    primary = few["a>b"]["comparisons"][stats.PRIMARY]
    assert primary["diff"] > 0.1 and primary["p"] == 0.25 and not primary["can_reject"]
    assert not stats.primary_holds(few["a>b"])


def test_holm_across_pairs_can_undo_a_within_pair_win():
    def pair(p):
        return {"comparisons": {stats.PRIMARY: {"diff": 0.02, "p": p, "p_holm": p}}}
    pairs = {"a>b": pair(0.03), "c>d": pair(0.04)}
    stats.holm_across_pairs(pairs)
    assert [r["comparisons"][stats.PRIMARY]["p_holm_pairs"] for r in pairs.values()] == [0.06, 0.06]
    assert not any(stats.primary_holds(r) for r in pairs.values())


def test_the_held_out_term_subset_is_scored_when_the_test_file_marks_it(tmp_path):
    y, runs = _fake_pair(tmp_path, QUALITY)
    test = tmp_path / "test.csv"
    held = np.arange(len(y)) % 4 == 0
    pd.DataFrame({"ER_DHX": ["note"] * len(y), "LABEL": y, "HELD_OUT_TERM": held.astype(int)}).to_csv(test, index=False)
    cfg = RunConfig().with_overrides({"data.test_path": str(test), "data.text_col": "ER_DHX"})
    mask = pt.held_out_mask(cfg)
    assert np.array_equal(mask, held)
    s = stats.summarise_pair(y, runs, PAIRED, held_out=mask, n_boot=200)
    block = s["held_out"]
    assert block["n_notes"] == held.sum() and set(block["rows"]) == set(stats.ROWS)
    expect = np.mean([roc_auc_score(y[held], p[held]) for p in runs["searched"].probs])
    assert block["rows"]["searched"]["auroc_mean"] == pytest.approx(expect)
    assert block["comparisons"][stats.PRIMARY]["diff"] > 0
    pd.DataFrame({"ER_DHX": ["note"], "LABEL": [1], "HELD_OUT_TERM": ["maybe"]}).to_csv(test, index=False)
    with pytest.raises(UserError, match="HELD_OUT_TERM"):
        pt.held_out_mask(cfg)


# ------------------------------------------------------------------------------- run_table, faked
JOBS = {}  # out dir → the config the fake pool was handed
SEARCHED = {}  # search dir → the space the fake search was handed


def _fake_run(todo, workers, world):
    """Stand-in for the worker pool (`table_jobs._run`, handed the jobs not yet complete): each job writes
    predictions on its config's test notes and a probe whose held-out AUROC grows with the row's quality."""
    for kind, cfg, out, *_ in todo:
        JOBS[out] = cfg
        row = out.parent.name.removesuffix("-random") if kind == "teacher" else out.parent.name
        y = pd.read_csv(cfg.data.test_path)["LABEL"].to_numpy()
        quality = QUALITY.get(row, QUALITY["teacher"]) + (0.5 if cfg.data.path.endswith("n200/data/train.csv") else 0)
        if out.parents[2].name == "recipe":  # the recipe grid: 3e-4 is the best encoder rate for every model, and
            # a student (kobert-tiny) does better still with the mean-pooled head
            quality = (1.0 if cfg.train.lr_encoder == 3e-4 else 0.2) + (0.5 if cfg.student.pooling == "mean" else 0)
        _write_run(out, y, quality, np.random.default_rng(cfg.train.seed))
        (out / "probe.json").write_text(json.dumps({"held_out": 0.5 + quality / 10 + cfg.train.seed / 100,
                                                    "seen": 0.9}))


def fake_stand_ins(names):
    """Stand-in folders in DSGKD_CACHE, one small file each, built once per cache (like the real ones)."""
    from dsgkd.models.tiny import cache_root

    dirs = {}
    for name in names:
        dirs[name] = cache_root() / "models" / name.replace("@", "-").replace(":", "-")
        if not dirs[name].is_dir():
            dirs[name].mkdir(parents=True)
            (dirs[name] / "model.safetensors").write_bytes(os.urandom(16))  # no two builds alike
    return dirs


@pytest.fixture
def fake_table(monkeypatch, tmp_path):
    import dsgkd.models.tiny

    def fake_search(space, out, trials, reuse=None):
        SEARCHED[out] = space
        (out).mkdir(parents=True, exist_ok=True)
        return space.base.with_overrides({"teacher.ref": space.pairs[0].teacher, "student.ref": space.pairs[0].student,
                                          "distill.alpha": 0.4, "distill.layer_map": "uniform"})

    monkeypatch.setattr(table_jobs, "_run", _fake_run)
    monkeypatch.setattr(table_jobs, "_build_caches", lambda groups, workers: None)
    monkeypatch.setattr(pt, "teacher_probes", lambda ref, world: {"pretrained": {"held_out": 0.91, "seen": 0.95},
                                                                  "random_init": {"held_out": 0.49, "seen": 0.5},
                                                                  "wrong_knowledge": {"held_out": 0.52, "seen": 0.9}})
    monkeypatch.setattr(pt, "searched_config", fake_search)
    monkeypatch.setattr(dsgkd.models.tiny, "ensure_all", fake_stand_ins)
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path / "cache"))

    def run(out, **kw):
        args = {"seeds": [0, 1], "trials": 2, "workers": 1, "sizes": dict(TINY), "pairs": ["kmbert-tiny>kobert-tiny"],
                "results_path": None, **kw}
        return pt.run_table(out, **args)
    return run


def test_run_table_writes_the_schema_the_curve_and_the_primary_first(tmp_path, fake_table, capsys):
    saved = fake_table(tmp_path / "t", curve=[200, 60])
    r = saved["pairs"]["kmbert-tiny>kobert-tiny"]
    assert set(r["rows"]) == set(stats.ROWS) and r["comparisons"][stats.PRIMARY]["p_holm_pairs"] >= 0
    assert saved["protocol"]["world"] == "default" and saved["protocol"]["sizes"] == TINY
    assert saved["protocol"]["seeds"] == [0, 1] and len(saved["protocol"]["space_sha256"]) == 64
    # the reported test split comes from the seed drawn after the design froze, not the one the demo shows
    assert saved["protocol"]["data_seeds"] == {**DATA_SEEDS, "test": REPORTED_SEEDS["test"]}
    assert REPORTED_SEEDS["test"] != DATA_SEEDS["test"]
    demo_test = generate_notes(TINY["test"], seed=DATA_SEEDS["test"])["ER_DHX"].tolist()
    assert pd.read_csv(tmp_path / "t" / "data" / "test.csv")["ER_DHX"].tolist() != demo_test
    on_disk = json.loads((tmp_path / "t" / "results.json").read_text())
    assert on_disk["pairs"].keys() == {"kmbert-tiny>kobert-tiny"} and set(on_disk["curve"]) == {"200", "60"}
    point = on_disk["curve"]["60"]["kmbert-tiny>kobert-tiny"]  # the table's own size reuses its rows
    assert point["rows"]["searched"]["auroc_per_seed"] == r["rows"]["searched"]["auroc_per_seed"]
    assert (tmp_path / "t" / "curve" / "n200" / "data" / "train.csv").is_file()
    assert not (tmp_path / "t" / "curve" / "n60").exists()
    text = (tmp_path / "t" / "results.md").read_text()
    assert text.index("## Protocol") < text.index("## Primary comparison") < text.index("## Learning curve")
    assert text.index("## Primary comparison") < min(text.index(k) for k in ("searched − control", "paper − control"))
    assert "Primary comparison, declared before the run" in text and "Test split read once per run" in text
    assert saved["power"]["seeds"] == 2 and saved["power"]["mdd_80"] == float("inf")  # 2 seeds: no claim possible
    assert {"gap", "gap_over_seen_terms", "test_auroc"} <= set(saved["headroom"])
    assert "**Declared power**" in text and "**Headroom**" in text
    # the learning rates chosen per model on validation, before any search, used by every row of that model
    assert set(saved["recipes"]) == {"kmbert-tiny", "kobert-tiny"}
    assert all((c["lr_encoder"], c["lr_head"]) == (3e-4, 3e-3) for c in saved["recipes"].values())
    control = JOBS[tmp_path / "t" / "kmbert-tiny__kobert-tiny" / "control" / "seed_0"]
    teacher = JOBS[tmp_path / "t" / "teachers" / "kmbert-tiny" / "seed_0"]
    assert (control.train.lr_encoder, control.train.lr_head) == (3e-4, 3e-3)
    assert (teacher.teacher.finetune_lr_encoder, teacher.teacher.finetune_lr_head) == (3e-4, 3e-3)
    # the head's pooling is tried for the student only, and every row that trains the student takes the chosen one
    assert saved["recipes"]["kobert-tiny"]["pooling"] == "mean" and saved["recipes"]["kmbert-tiny"]["pooling"] == "cls"
    assert control.student.pooling == "mean" and "0.0003/0.003 mean" in saved["recipes"]["kobert-tiny"]["val_auroc"]
    assert "0.0003/0.003 mean" not in saved["recipes"]["kmbert-tiny"]["val_auroc"]
    assert "`kobert-tiny` 0.0003 / 0.003, head pooling mean" in text
    # both searches offer the lexicon mined from the table's notes and a domain corpus (no term list read)
    lexicon = tmp_path / "t" / "data" / "lexicon.txt"
    for arm in ("search", "search_knowledge_free", "search_wrong_knowledge"):
        choices = SEARCHED[tmp_path / "t" / "kmbert-tiny__kobert-tiny" / arm].params["distill.selector"].choices
        assert f"lexicon:{lexicon}" in choices and "latin" in choices
    assert lexicon.read_text().startswith("# mined by dsgkd table") and len(lexicon.read_text().splitlines()) > 20
    assert "learning rates per model chosen on validation" in text and "`kobert-tiny` 0.0003 / 0.003" in text
    # the held-out-term probe of every row, per seed, beside AUROC; the teachers as distilled
    assert r["rows"]["searched"]["held_out_probe_per_seed"] == pytest.approx(
        [0.5 + QUALITY["searched"] / 10, 0.51 + QUALITY["searched"] / 10])
    assert r["comparisons"][stats.PRIMARY]["probe_higher_share"] == 1.0
    assert r["comparisons"]["searched_vs_knowledge_free"]["probe_higher_share"] == 1.0
    assert r["pretrained_teacher_probe"]["pretrained"]["held_out"] == 0.91
    assert "| held-out-term probe: control | knowledge_free |" in text and "| 0.910, 0.490, 0.520 |" in text
    # the wrong-knowledge arm: its own search with the teacher's twin, which is fine-tuned like the others
    wrong_search = SEARCHED[tmp_path / "t" / "kmbert-tiny__kobert-tiny" / "search_wrong_knowledge"]
    assert wrong_search.pairs[0].teacher == wrong_search.base.teacher.ref == "kmbert-tiny@default:negative"
    assert wrong_search.pairs[0].key == "kmbert-tiny>kobert-tiny"
    twin = JOBS[tmp_path / "t" / "teachers" / "kmbert-tiny@default:negative" / "seed_1"]
    assert twin.teacher.finetune and twin.teacher.finetune_lr_encoder == teacher.teacher.finetune_lr_encoder
    assert JOBS[tmp_path / "t" / "kmbert-tiny__kobert-tiny" / "searched_wrong_teacher" / "seed_0"].teacher.ref == \
        "kmbert-tiny@default:negative"
    assert "| teacher | wrong twin |" in text and "within the searched config" in text
    again = fake_table(tmp_path / "t", pairs=["kmbert-tiny>xlmr-tiny"])  # same protocol: merged, curve kept
    assert set(again["pairs"]) == {"kmbert-tiny>kobert-tiny", "kmbert-tiny>xlmr-tiny"} and "200" in again["curve"]
    assert len(again["meta"]["invocations"]) == 2
    text = (tmp_path / "t" / "results.md").read_text()
    assert "(2 invocations: `dsgkd table`" in text and "**Pairs** `kmbert-tiny>kobert-tiny`, `kmbert-tiny>xlmr-tiny`." in text


def test_an_invocation_cut_off_still_counts_and_the_time_is_kept_by_phase(tmp_path, fake_table, monkeypatch):
    """A session ends during the searches: the next invocation adopts the cut-off one's phases, results.json holds
    both, results.md says which was cut off and where the time went."""
    out, searches = tmp_path / "t", pt.pair_searches

    def session_ends(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pt, "pair_searches", session_ends)
    with pytest.raises(KeyboardInterrupt):
        fake_table(out)
    cut_off = json.loads((out / "invocation.json").read_text())["current"]
    assert list(cut_off["phases"]) == ["data, stand-ins and n-gram", "recipe grid"]
    monkeypatch.setattr(pt, "pair_searches", searches)
    first, second = fake_table(out)["meta"]["invocations"]
    assert first["interrupted"] and first["phases"] == cut_off["phases"] and "interrupted" not in second
    assert {"searches kmbert-tiny>kobert-tiny", "teachers and rows, seed by seed"} <= set(second["phases"])
    assert not (out / "invocation.json").exists()
    text = (out / "results.md").read_text()
    assert "rows' teachers cached (cut off)" in text and "Time by phase" in text and "recipe grid" in text


def test_the_published_table_runs_the_default_pairs_and_all_runs_every_pair():
    space = load_space(pt.SPACE)
    assert [p.key for p in pt.choose_pairs(space, None)] == list(pt.DEFAULT_PAIRS)
    assert len(pt.choose_pairs(space, "all")) == 4 == len(space.pairs)
    assert [p.key for p in pt.choose_pairs(space, ["biobert-tiny>kobert-tiny"])] == ["biobert-tiny>kobert-tiny"]
    with pytest.raises(UserError, match="unknown pair"):
        pt.choose_pairs(space, ["kmbert-tiny>mbert"])


def test_a_different_protocol_is_refused_before_anything_runs(tmp_path, fake_table):
    out = tmp_path / "t"
    fake_table(out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(UserError, match=r"another protocol \(sizes"):
        fake_table(out, sizes={**TINY, "train": 80})
    with pytest.raises(UserError, match="seeds"):
        fake_table(out, seeds=[0, 1, 2])
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(UserError, match="world"):
        fake_table(out, world="mars")  # another world is another protocol
    with pytest.raises(UserError, match="world 'a b'"):
        fake_table(tmp_path / "w", world="a b")
    assert not (tmp_path / "w").exists() and sorted(p.name for p in out.iterdir()) == before
    results = json.loads((out / "results.json").read_text())
    results["protocol"]["trials"] = 9
    (out / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match="refusing to render or merge"):
        pt.write_report(out, None)


def test_protocol_ignores_the_code_version_and_refuses_an_unprotocolled_out(tmp_path):
    protocol = pt.table_protocol(pt.SPACE, world=None, sizes=TINY, seeds=[0, 1], trials=3)
    record_protocol(tmp_path / "a", protocol)
    check_protocol(tmp_path / "a", {**protocol, "code": {"dsgkd_version": "9", "commit": "abc"}})
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.json").write_text("{}")
    with pytest.raises(UserError, match="no protocol.json"):
        check_protocol(tmp_path / "old", protocol)


def test_cli_parses_pairs_in_both_spellings_and_checks_the_curve():
    from dsgkd.cli.table import parse_curve, parse_pairs

    assert parse_pairs("kmbert-tiny:xlmr-tiny, biobert-tiny>kobert-tiny") == ["kmbert-tiny>xlmr-tiny",
                                                                              "biobert-tiny>kobert-tiny"]
    with pytest.raises(UserError, match="TEACHER:STUDENT"):
        parse_pairs("kmbert-tiny")
    assert parse_pairs(" all") == "all" and parse_pairs(None) is None
    assert parse_curve("200,600,2000") == [200, 600, 2000]
    with pytest.raises(UserError, match="--curve"):
        parse_curve("20,600")


def test_cli_reuse_reads_each_profiles_own_earlier_table(tmp_path, monkeypatch):
    """`--reuse OTHER` with several profiles takes OTHER/<profile> for each, like --out; with one, OTHER itself."""
    from dsgkd.cli import table as cli_table
    from dsgkd.cli.main import main

    handed = []
    monkeypatch.setattr(cli_table, "run_one", lambda args, out, profile, results, reuse=None:
                        handed.append((out, profile, reuse)))
    monkeypatch.setattr("dsgkd.experiments.table_render.write_worlds_report", lambda outs, results: "")
    monkeypatch.setattr(cli_table, "_ran", lambda out: out)
    assert main(["table", "--profile", "positive,negative", "--out", str(tmp_path / "new"),
                 "--reuse", str(tmp_path / "old")]) == 0
    assert handed == [(tmp_path / "new" / p, p, tmp_path / "old" / p) for p in ("positive", "negative")]
    handed.clear()
    assert main(["table", "--profile", "positive", "--out", str(tmp_path / "one"), "--reuse", str(tmp_path / "old")]) == 0
    assert handed == [(tmp_path / "one", "positive", tmp_path / "old")]


def test_render_reports_a_missing_held_out_column_and_the_reference_check(tmp_path):
    y, runs = _fake_pair(tmp_path, QUALITY, seeds=tuple(range(8)))
    pairs = {"a>b": {**stats.summarise_pair(y, runs, PAIRED, held_out=None, n_boot=200),
                     "configs": {"searched": "alpha 1", "knowledge_free": "alpha 2", "wrong_knowledge": "alpha 3"}}}
    stats.holm_across_pairs(pairs)
    protocol = pt.table_protocol(pt.SPACE, world=None, sizes=TINY, seeds=[0, 1, 2], trials=3)
    meta = {"invocations": [{"command": "dsgkd table", "seconds": 60, "date": "d"}], "machine": "m",
            "recipe": RunConfig().train.model_dump(), "teacher_recipe": {"finetune_epochs": 6, "finetune_lr_encoder": 1e-3,
                                                                          "finetune_lr_head": 3e-3}}
    text = render({"protocol": protocol, "meta": meta, "pairs": pairs})
    assert "Left out: the test file has no HELD_OUT_TERM column" in text
    assert "in 1 of 1 pairs.**" in text and "Control − n-gram reference:" in text


def test_a_worlds_table_uses_that_worlds_stand_ins_under_the_same_pair_keys(tmp_path):
    space = load_space(pt.SPACE)
    moved = pt.world_pairs(space.pairs, "w2")
    assert [p.key for p in moved] == [p.key for p in space.pairs]
    assert all(p.teacher.endswith("@w2") and p.student.endswith("@w2") for p in moved)
    assert pt.world_pairs(space.pairs, None) == space.pairs
    paths = pt.make_data(tmp_path, {"train": 30, "test": 30}, "w2")
    train, test = (pd.read_csv(paths[s]) for s in ("train", "test"))
    assert train["HELD_OUT_TERM"].sum() == 0 and "HELD_OUT_TERM" in test


def test_several_control_worlds_render_as_one_document(tmp_path, fake_table, capsys):
    """`dsgkd table --profile positive,negative --render-only` reads OUT/<profile> and writes one document whose
    summary names every world's primary comparison, then each world's own table."""
    from dsgkd.cli import main
    from dsgkd.cli.table import parse_profiles

    assert parse_profiles("positive, negative") == ["positive", "negative"] and parse_profiles(None) == [None]
    for bad in ("positive,positive", "mars", ","):
        with pytest.raises(UserError, match="--profile"):
            parse_profiles(bad)
    for profile in ("positive", "negative"):
        fake_table(tmp_path / "t" / profile)
    assert main(["table", "--out", str(tmp_path / "t"), "--profile", "positive,default", "--render-only"]) != 0
    assert "t/default: no results.json to render" in capsys.readouterr().err
    doc = tmp_path / "results.md"
    assert main(["table", "--out", str(tmp_path / "t"), "--profile", "positive,negative", "--render-only",
                 "--results", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# DSG-KD on the embedded benchmark: the paper's table on control worlds")
    summary = text[: text.index("## World")]
    assert "| default:positive | kmbert-tiny>kobert-tiny |" in summary
    assert "| default:negative | kmbert-tiny>kobert-tiny |" in summary
    assert text.index("## World `default:positive`") < text.index("## World `default:negative`")
    assert "### Primary comparison" in text and "\n# " not in text.split("\n", 1)[1]


def test_a_table_cut_off_resumes_from_its_record_on_a_machine_without_its_out(tmp_path, fake_table, monkeypatch):
    """The record of a table cut off midway through its first seed, restored on a machine whose cache holds
    none of its stand-ins: the resumed table reruns no finished run, runs the rest, and counts the cut-off
    invocation's time; a cache holding other builds of its stand-ins is refused."""
    from dsgkd.experiments.table_record import copy_record

    ran, cut = [], {"at": 5}  # seed 0's three teachers and two of its rows

    def counted_run(todo, workers, world):
        if todo[0][0] == "teacher" and cut["at"]:
            todo, cut["at"] = todo[:cut["at"]], 0
            _fake_run(todo, workers, world)
            ran.extend(job[2] for job in todo)
            raise KeyboardInterrupt
        ran.extend(job[2] for job in todo)
        _fake_run(todo, workers, world)

    monkeypatch.setattr(table_jobs, "_run", counted_run)
    with pytest.raises(KeyboardInterrupt):
        fake_table(tmp_path / "gone")
    before = len(ran)
    copy_record(tmp_path / "gone", tmp_path / "record")
    built = {p.parent.name: p.read_bytes() for p in (tmp_path / "record" / "stand_ins").glob("*/model.safetensors")}
    assert len(built) == 3  # the teacher, its wrong-knowledge twin, the student
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path / "other_machine"))  # whose own builds would differ
    fake_stand_ins(["kmbert-tiny"])
    with pytest.raises(UserError, match="another build of kmbert-tiny"):
        fake_table(tmp_path / "gone")
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path / "empty_cache"))
    copy_record(tmp_path / "record", tmp_path / "new")
    installed = tmp_path / "empty_cache" / "models"
    assert {p.parent.name: p.read_bytes() for p in installed.glob("*/model.safetensors")} == built
    first, second = fake_table(tmp_path / "new")["meta"]["invocations"]
    resumed = [p.relative_to(tmp_path / "new") for p in ran[before:]]
    assert not {p.relative_to(tmp_path / "gone") for p in ran[:before]} & set(resumed)  # nothing run twice
    teachers = [p for p in resumed if p.parts[0] == "teachers"]
    assert [p.parts[-1] for p in teachers] == ["seed_1"] * 3  # seed 0's were not run again
    assert len(resumed) == 3 + 7 * 2 - 2 and {p.parent.name for p in resumed if p not in teachers} == \
        set(stats.TRAINED_ROWS)
    assert first["interrupted"] and "searches kmbert-tiny>kobert-tiny" in first["phases"]
    notes = [pd.read_csv(tmp_path / out / "data" / "test.csv") for out in ("gone", "new")]
    assert notes[0].equals(notes[1])  # regenerated from its seed, not carried


def test_the_table_reports_which_rows_the_floor_redrew(tmp_path):
    """Each run's metrics.json lists its draws (`train.restart_floor`): the summary keeps the redraws per seed and
    the rendered pair names the rows redrawn and on how many seeds; runs without draws (older tables) say nothing."""
    from dsgkd.experiments.table_render import pair_lines

    y, runs = _fake_pair(tmp_path, QUALITY, seeds=(0, 1, 2))
    assert all(r.redraws is None for r in runs.values())
    s = stats.summarise_pair(y, runs, PAIRED, held_out=None, n_boot=50)
    s["configs"] = {"searched": "s", "knowledge_free": "k"}
    assert "restart_floor" not in "\n".join(pair_lines("k>x", s, stats.PRIMARY))
    for row in stats.TRAINED_ROWS:
        for seed in (0, 1, 2):
            path = tmp_path / row / f"seed_{seed}" / "metrics.json"
            redraws = {("control", 2): 2, ("knowledge_free", 0): 1}.get((row, seed), 0)
            path.write_text(json.dumps({**json.loads(path.read_text()),
                                        "draws": [{"seed": seed, "val_auroc": 0.5, "best_epoch": 1}] * (1 + redraws)}))
    y, runs = pt.read_pair(tmp_path, [0, 1, 2], (*stats.TRAINED_ROWS, *stats.TEACHER_ROWS), tmp_path / "ngram")
    assert runs["control"].redraws == [0, 0, 2] and runs["searched"].redraws == [0, 0, 0]
    assert runs["teacher"].redraws is None  # a teacher's guard is its own (teacher.finetune_floor)
    s = stats.summarise_pair(y, runs, PAIRED, held_out=None, n_boot=50)
    assert s["rows"]["control"]["redraws_per_seed"] == [0, 0, 2] and "redraws_per_seed" not in s["rows"]["teacher"]
    s["configs"] = {"searched": "s", "knowledge_free": "k"}
    line = next(line for line in pair_lines("k>x", s, stats.PRIMARY) if "restart_floor" in line)
    assert line.endswith("): control (KD off, same steps and notes as searched) on 1 of 3 seeds; "
                         "knowledge_free (own search, random-init teacher) on 1 of 3 seeds.")


def test_the_protocol_states_the_floor_every_row_trains_under(tmp_path, fake_table):
    saved = fake_table(tmp_path / "t")
    from dsgkd.experiments.table_render import protocol_lines

    assert saved["meta"]["recipe"]["restart_floor"] > 0
    recipe = next(line for line in protocol_lines(saved) if line.startswith("- **Recipe"))
    assert f"stays below {saved['meta']['recipe']['restart_floor']:g} is redrawn from another seed, at most " \
           f"{saved['meta']['recipe']['restarts']} times" in recipe
    assert saved["meta"]["recipe"]["transfer_batching"] == "alongside"  # the table's space sets it
    assert "KD-off control is a plain fine-tune" in recipe and "`train.transfer_batching: alongside`" in recipe


def test_pairs_with_one_student_train_its_control_once_and_pairs_with_one_teacher_its_fine_tunes_once(
        tmp_path, fake_table, monkeypatch):
    """A KD-off control reads no teacher, so two pairs with one student hand the pool one control per seed and the
    second pair's folder links to it (a resumed table links it again); two pairs with one teacher hand it that
    teacher's shared fine-tunes once. Each seed is one call to the pool, both pairs' runs in it."""
    handed = []

    def counted_run(todo, workers, world):
        handed.append([job[2].relative_to(tmp_path / "t") for job in todo])
        _fake_run(todo, workers, world)

    monkeypatch.setattr(table_jobs, "_run", counted_run)
    saved = fake_table(tmp_path / "t", pairs=["kmbert-tiny>xlmr-tiny", "biobert-tiny>xlmr-tiny",
                                              "kmbert-tiny>kobert-tiny"])
    seeds = [calls for calls in handed if any(p.parts[0] == "teachers" for p in calls)]
    assert len(seeds) == 2  # one call per seed
    for seed, calls in enumerate(seeds):
        controls = [p for p in calls if p.parts[1] == "control"]
        assert sorted(p.parts[0] for p in controls) == ["kmbert-tiny__kobert-tiny", "kmbert-tiny__xlmr-tiny"]
        teachers = [p for p in calls if p.parts[0] == "teachers"]
        assert len(teachers) == len(set(teachers)) == 6  # kmbert-tiny's three, once; biobert-tiny's three
        link = tmp_path / "t" / "biobert-tiny__xlmr-tiny" / "control" / f"seed_{seed}"
        assert link.is_symlink() and link.resolve() == (tmp_path / "t" / "kmbert-tiny__xlmr-tiny" / "control"
                                                        / f"seed_{seed}").resolve()
    rows = {key: saved["pairs"][key]["rows"]["control"]["auroc_per_seed"] for key in saved["pairs"]}
    assert rows["biobert-tiny>xlmr-tiny"] == rows["kmbert-tiny>xlmr-tiny"]
    link.unlink()
    handed.clear()
    fake_table(tmp_path / "t", pairs=["kmbert-tiny>xlmr-tiny", "biobert-tiny>xlmr-tiny", "kmbert-tiny>kobert-tiny"])
    assert not handed and link.is_symlink()  # nothing to run; the link made again


def test_a_control_trained_in_both_pairs_before_sharing_is_kept_and_not_run_again(tmp_path):
    """A table started before controls were shared holds both pairs' controls as runs of their own: both stay,
    and a pair's missing control links to whichever is complete."""
    base = RunConfig().with_overrides({"distill.alpha": 0.0, "distill.beta": 0.0, "distill.gamma": 0.0})
    a, b = (base.with_overrides({"teacher.ref": t}) for t in ("kmbert-tiny", "biobert-tiny"))
    kd = a.with_overrides({"distill.alpha": 0.5})
    out_a, out_b = tmp_path / "a" / "control" / "seed_0", tmp_path / "b" / "control" / "seed_0"
    out_b.mkdir(parents=True)
    (out_b / "metrics.json").write_text("{}")
    groups, links = table_jobs.shared_runs([([("student", a, out_a), ("student", kd, tmp_path / "a" / "kd")], None),
                                            ([("student", b, out_b)], None)])
    assert groups == [([("student", kd, tmp_path / "a" / "kd")], None), ([("student", b, out_b)], None)]
    assert links == [(out_a, out_b)]
    other_seed = b.with_overrides({"train.seed": 1})
    assert table_jobs.shared_runs([([("student", a, out_a)], None),
                                   ([("student", other_seed, tmp_path / "b1")], None)])[1] == []


def test_a_next_design_rescores_the_earlier_tables_runs_and_trains_only_what_changed(tmp_path, fake_table,
                                                                                      monkeypatch):
    """`--reuse`: with a new test split, every student the first table trained (recipe grid and rows) is handed to
    the pool with its source, none trains and no cache is built for it; the teachers' rows score again (their
    fine-tunes are cached by content); a row whose config changed trains, its teacher cached."""
    from dsgkd.pipeline.resolve import resolve_run

    first, second = tmp_path / "first", tmp_path / "second"

    def with_models(todo, workers, world):  # a trained run keeps its student and its resolved config
        _fake_run(todo, workers, world)
        for kind, cfg, out, *_ in todo:
            if kind == "student":
                (out / "student").mkdir(exist_ok=True)
                (out / "student" / "config.json").write_text("{}")
                resolve_run(cfg).cfg.to_yaml(out / "config.yaml")

    monkeypatch.setattr(table_jobs, "_run", with_models)
    fake_table(first)
    handed, built = [], []

    def counted_run(todo, workers, world):
        handed.extend(todo)
        with_models(todo, workers, world)

    monkeypatch.setattr(table_jobs, "_run", counted_run)
    monkeypatch.setattr(table_jobs, "_build_caches", lambda groups, workers: built.extend(groups))
    monkeypatch.setattr(pt, "REPORTED_SEEDS", {**pt.REPORTED_SEEDS, "test": 4242})
    changed = first / "kmbert-tiny__kobert-tiny" / "paper" / "seed_1"
    (changed / "config.yaml").write_text((changed / "config.yaml").read_text().replace("alpha: 0.6", "alpha: 0.61"))
    saved = fake_table(second, reuse=first)
    students = {out: src for kind, _, out, _, src in handed if kind == "student"}
    assert students[second / changed.relative_to(first)] is None
    del students[second / changed.relative_to(first)]
    assert len(students) > 20 and all(src == first / out.relative_to(second) for out, src in students.items())
    assert {src for kind, *_, src in handed if kind == "teacher"} == {None}
    # caches are built for the one KD row that trains (seed 1's), never for a rescored one
    assert [[out for kind, _, out in jobs if kind == "student" and out == second / changed.relative_to(first)]
            for jobs, _ in built] == [[second / changed.relative_to(first)]]
    assert saved["meta"]["reused"] == [{"from": str(first), "runs": len(students), "searches": 0}]
    assert saved["protocol"]["data_seeds"]["test"] == 4242
