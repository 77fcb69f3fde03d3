"""`dsgkd table --reuse`: an earlier table's runs rescored on a new test split, its searches' best configs kept,
only where they trained exactly what the new table would."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from dsgkd.config import RunConfig
from dsgkd.constants import SEARCH_SPACES
from dsgkd.data.synthetic import generate_notes, write_table
from dsgkd.errors import UserError
from dsgkd.experiments import paper_table as pt
from dsgkd.experiments.table_protocol import PROTOCOL_FILE
from dsgkd.experiments.table_record import STAND_INS
from dsgkd.experiments.table_reuse import REUSED, Reuse, same_draws
from dsgkd.pipeline.rescore import RESCORED, rescore_run
from dsgkd.pipeline.resolve import resolve_run
from dsgkd.pipeline.train import run_train
from dsgkd.search.space import load_space


def _table(root, test_seed, trials=3):
    """A table folder with its protocol and notes: training, validation and transfer notes from fixed seeds, the
    test notes from `test_seed`."""
    (root / "data").mkdir(parents=True)
    for split, n, seed in (("train", 160, 1), ("val", 80, 2), ("test", 80, test_seed), ("transfer", 40, 4)):
        write_table(generate_notes(n, seed=seed), root / "data" / f"{split}.csv")
    (root / PROTOCOL_FILE).write_text(json.dumps({"trials": trials}))
    (root / STAND_INS).write_text(json.dumps({"xlmr-tiny": {"folder": "x", "sha256": "1"}}))
    return root


def _cfg(root, **over) -> RunConfig:
    d = root / "data"
    return RunConfig().with_overrides({
        "data.path": str(d / "train.csv"), "data.val_path": str(d / "val.csv"), "data.test_path": str(d / "test.csv"),
        "data.transfer_path": str(d / "transfer.csv"), "data.text_col": "ER_DHX", "data.label_col": "LABEL",
        "teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny", "train.epochs": 1, "train.batch_size": 16,
        "train.max_length": 64, "eval.n_bootstrap": 50, "distill.gamma": 0.0, **over})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Table A with one trained KD run; table B, the same notes but for a test split from another seed."""
    root = tmp_path_factory.mktemp("reuse")
    a, b = _table(root / "a", test_seed=3), _table(root / "b", test_seed=33)
    run = a / "pair" / "searched" / "seed_0"
    run_train(resolve_run(_cfg(a)), run)
    return a, b, run


def test_a_run_is_rescored_on_the_new_test_split_as_a_fresh_run_would_score_it(trained, tmp_path):
    a, b, run = trained
    source = Reuse(a, b).source(_cfg(b), b / "pair" / "searched" / "seed_0")
    assert source == run
    old = json.loads((run / "metrics.json").read_text())
    same = rescore_run(_cfg(a), source, tmp_path / "same")  # its own test split: what training wrote, again
    np.testing.assert_allclose(pd.read_csv(tmp_path / "same" / "predictions.csv")["prob"],
                               pd.read_csv(run / "predictions.csv")["prob"], atol=1e-6)
    assert same["test"]["auroc"]["value"] == pytest.approx(old["test"]["auroc"]["value"], abs=1e-9)
    assert same["calibration"]["test"] == pytest.approx(old["calibration"]["test"], abs=1e-6)
    new = rescore_run(_cfg(b), source, tmp_path / "new")
    y = pd.read_csv(b / "data" / "test.csv")["LABEL"].astype(int).to_numpy()
    assert (pd.read_csv(tmp_path / "new" / "predictions.csv")["label"].to_numpy() == y).all()
    assert new["test"]["auroc"]["value"] != old["test"]["auroc"]["value"]
    # validation, temperature and threshold are the run's own: nothing of them read a test split
    assert (new["val"], new["temperature"], new["threshold"]) == (old["val"], old["temperature"], old["threshold"])
    assert new["data"]["fingerprint"] != old["data"]["fingerprint"]
    assert new[RESCORED]["trained_in"] == str(run) and RESCORED not in old
    assert RunConfig.from_yaml(tmp_path / "new" / "config.yaml").data.test_path == str(b / "data" / "test.csv")
    card = (tmp_path / "new" / "student" / "README.md").read_text()
    assert f"{new['test']['auroc']['value']:.3f}" in card
    assert (tmp_path / "new" / "student" / "model.safetensors").read_bytes() == \
        (run / "student" / "model.safetensors").read_bytes()


def test_a_run_is_not_reused_when_its_training_would_differ(trained, tmp_path):
    a, b, run = trained
    folder = b / "pair" / "searched" / "seed_0"
    assert Reuse(a, b).source(_cfg(b, **{"distill.alpha": 0.11}), folder) is None  # another config
    assert Reuse(a, b).source(_cfg(b, **{"train.seed": 1}), folder) is None
    assert Reuse(a, b).source(_cfg(b), b / "pair" / "control" / "seed_0") is None  # nothing there
    c = _table(tmp_path / "c", test_seed=33)
    write_table(generate_notes(160, seed=9), c / "data" / "train.csv")  # the same path, other training notes
    assert Reuse(a, c).source(_cfg(c), c / "pair" / "searched" / "seed_0") is None


def test_a_file_a_config_names_inside_its_table_is_compared_by_its_bytes(tmp_path):
    """The mined lexicon sits beside the notes: two configs naming it are the same run only if its bytes agree."""
    a, b = _table(tmp_path / "a", test_seed=3), _table(tmp_path / "b", test_seed=33)
    views = [_cfg(t, **{"distill.selector": f"lexicon:{t / 'data' / 'lexicon.txt'}"}).model_dump(mode="json")
             for t in (b, a)]
    for t in (a, b):
        (t / "data" / "lexicon.txt").write_text("sepsis\n")
    assert Reuse(a, b)._same(*views)
    (b / "data" / "lexicon.txt").write_text("sepsis\nmeningitis\n")
    assert not Reuse(a, b)._same(*views)


def test_an_unfinished_or_modelless_run_is_not_a_source(trained, tmp_path):
    a, _, run = trained
    d = _table(tmp_path / "d", test_seed=33)
    record = d.parent / "record"  # a table's record keeps metrics and predictions, never the student
    _table(record, test_seed=3)
    shutil.copytree(run, record / "pair" / "searched" / "seed_0", ignore=shutil.ignore_patterns("student"))
    assert Reuse(record, d).source(_cfg(d), d / "pair" / "searched" / "seed_0") is None


def test_a_search_is_reused_only_with_the_same_space_and_budget(tmp_path):
    a, b = _table(tmp_path / "a", 3, trials=3), _table(tmp_path / "b", 33, trials=3)
    spaces = {}
    for root in (a, b):
        data = {s: str(root / "data" / f"{s}.csv") for s in ("train", "val", "test", "transfer")}
        spaces[root] = pt.table_space(load_space(SEARCH_SPACES / "paper_table.yaml"), data)
    ran = a / "pair" / "search"
    ran.mkdir(parents=True)
    (ran / "space.yaml").write_text(spaces[a].dump_yaml())
    spaces[a].base.with_overrides({"distill.alpha": 0.37}).to_yaml(ran / "best.yaml")
    other_space = spaces[b].model_copy(update={"base": spaces[b].base.with_overrides({"train.epochs": 2})})
    assert not Reuse(a, b).search(other_space, b / "pair" / "search", 3)
    assert not Reuse(a, b).search(spaces[b], b / "pair" / "search", 4)  # another budget
    assert not (b / "pair" / "search").exists()
    reuse = Reuse(a, b)
    assert reuse.search(spaces[b], b / "pair" / "search", 3)
    best = RunConfig.from_yaml(b / "pair" / "search" / "best.yaml")
    assert best.distill.alpha == 0.37 and best.data == spaces[b].base.data  # this table's notes, its test split
    assert json.loads((b / "pair" / "search" / REUSED).read_text()) == {"from": str(ran)}
    assert reuse.record() == {"from": str(a), "runs": 0, "searches": 1}
    # trials are never redrawn, so another redraw floor is the same search, its best config trained under the new one
    floored = spaces[b].model_copy(update={"base": spaces[b].base.with_overrides({"train.restart_floor": 0.68,
                                                                                  "train.restarts": 4})})
    assert Reuse(a, b).search(floored, b / "pair" / "search_floored", 3) is False  # nothing ran there in A
    shutil.copytree(ran, a / "pair" / "search_floored")
    assert Reuse(a, b).search(floored, b / "pair" / "search_floored", 3)
    best = RunConfig.from_yaml(b / "pair" / "search_floored" / "best.yaml")
    assert (best.train.restart_floor, best.train.restarts, best.distill.alpha) == (0.68, 4, 0.37)


def test_reuse_refuses_itself_a_non_table_and_other_stand_ins(tmp_path):
    a = _table(tmp_path / "a", 3)
    with pytest.raises(UserError, match="own --out"):
        Reuse(a, a)
    with pytest.raises(UserError, match="not a table"):
        Reuse(tmp_path, a)
    b = _table(tmp_path / "b", 33)
    (b / STAND_INS).write_text(json.dumps({"xlmr-tiny": {"folder": "x", "sha256": "2"}}))
    with pytest.raises(UserError, match="other builds of xlmr-tiny"):
        Reuse(a, b).check_stand_ins()


@pytest.mark.parametrize("aurocs, floor, restarts, same", [
    ([0.71], 0.682, 4, True),  # learnt at once: any floor up to 0.71 keeps it
    ([0.55, 0.70], 0.682, 4, True),  # the redraw clears the higher floor too
    ([0.55, 0.62], 0.682, 4, False),  # the higher floor would draw again
    ([0.55, 0.58, 0.59], 0.682, 2, True),  # out of redraws under either floor
    ([0.55, 0.58, 0.59], 0.682, 4, False),  # more redraws allowed: it would go on
    ([0.55, 0.62], 0.5, 2, False),  # a lower floor would have kept the first draw
    ([0.55, 0.62], 0.0, 2, False),  # no floor: one draw
    ([0.55], 0.0, 2, True),
])
def test_a_run_counts_as_trained_under_another_floor_only_when_it_would_make_the_same_draws(aurocs, floor, restarts,
                                                                                             same):
    assert same_draws([{"val_auroc": a} for a in aurocs], floor, restarts) is same


def test_a_run_is_reused_under_a_new_floor_where_its_draws_clear_it(trained, tmp_path):
    a, _, run = trained
    e = _table(tmp_path / "e", test_seed=33)
    floor = json.loads((run / "metrics.json").read_text())
    kept = max(d["val_auroc"] for d in floor["draws"])
    folder = e / "pair" / "searched" / "seed_0"
    assert Reuse(a, e).source(_cfg(e, **{"train.restart_floor": round(kept - 0.01, 4)}), folder) == run
    assert Reuse(a, e).source(_cfg(e, **{"train.restart_floor": round(kept + 0.01, 4)}), folder) is None
