"""A table's record: exactly the files a resume skips on and a render reads, and never onto another table."""
import json

import pytest

from dsgkd.cli import main
from dsgkd.errors import UserError
from dsgkd.experiments.table_record import copy_record, record_files

PROTOCOL = {"world": "default:positive", "seeds": [0, 1], "trials": 8, "code": {"commit": "abc"}}


def fake_table(root):
    """What a table's OUT holds midway: finished runs, a search with its Ray trials, models, caches, notes."""
    files = {
        "protocol.json": json.dumps(PROTOCOL), "invocation.json": "{}", "data/train.csv": "notes",
        "ngram/metrics.json": "{}", "ngram/predictions.csv": "row,label,prob\n",
        "recipe/xlmr-tiny/lr0.001_0.003/seed_1000/metrics.json": "{}",
        "recipe/xlmr-tiny/lr0.001_0.003/seed_1000/predictions.csv": "p",
        "recipe/xlmr-tiny/lr0.001_0.003/seed_1000/student/model.safetensors": "weights",
        "teachers/biobert-tiny/seed_0/metrics.json": "{}", "teachers/biobert-tiny/seed_0/probe.json": "{}",
        "pair/search/best.yaml": "train: {}", "pair/search/tune/trial_0/metrics.json": "{}",
        "pair/search/tune/trial_0/checkpoint/model.safetensors": "w",
        "pair/control/seed_0/metrics.json": "{}", "pair/control/seed_0/predictions.csv": "p",
        "pair/control/seed_0/config.yaml": "c",
        "pair/teacher_cache/abc/metrics.json": "{}",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "pair" / "teacher").mkdir()
    (root / "pair" / "teacher" / "seed_0").symlink_to(root / "teachers" / "biobert-tiny" / "seed_0")
    return root


def test_the_record_is_the_figures_without_models_caches_notes_or_trials(tmp_path):
    table = fake_table(tmp_path / "out")
    assert sorted(map(str, record_files(table))) == [
        "invocation.json", "ngram/metrics.json", "ngram/predictions.csv", "pair/control/seed_0/metrics.json",
        "pair/control/seed_0/predictions.csv", "pair/search/best.yaml", "protocol.json",
        "recipe/xlmr-tiny/lr0.001_0.003/seed_1000/metrics.json",
        "recipe/xlmr-tiny/lr0.001_0.003/seed_1000/predictions.csv",
        "teachers/biobert-tiny/seed_0/metrics.json", "teachers/biobert-tiny/seed_0/probe.json"]


def test_save_then_restore_round_trips_and_rewrites_only_what_changed(tmp_path):
    table = fake_table(tmp_path / "out")
    assert len(copy_record(table, tmp_path / "record")) == 11
    (table / "pair" / "control" / "seed_0" / "metrics.json").write_text('{"auroc": 1}')
    assert list(map(str, copy_record(table, tmp_path / "record"))) == ["pair/control/seed_0/metrics.json"]
    fresh = tmp_path / "fresh"
    copy_record(tmp_path / "record", fresh)
    assert (fresh / "pair/control/seed_0/metrics.json").read_text() == '{"auroc": 1}'
    assert not (fresh / "pair/search/tune").exists() and not (fresh / "data").exists()
    (table / "invocation.json").unlink()  # the table finished: its invocations are in results.json now
    (table / "results.json").write_text("{}")
    assert set(map(str, copy_record(table, tmp_path / "record"))) == {"results.json", "invocation.json"}
    assert not (tmp_path / "record" / "invocation.json").exists()


def test_refuses_another_protocols_table_before_copying_anything(tmp_path):
    table = fake_table(tmp_path / "out")
    other = tmp_path / "other"
    other.mkdir()
    (other / "protocol.json").write_text(json.dumps({**PROTOCOL, "seeds": [0, 1, 2], "code": {"commit": "def"}}))
    with pytest.raises(UserError, match=r"another protocol \(differs in seeds\)"):
        copy_record(table, other)
    assert sorted(p.name for p in other.iterdir()) == ["protocol.json"]
    (other / "protocol.json").write_text(json.dumps({**PROTOCOL, "code": {"commit": "def"}}))  # only the code
    assert copy_record(table, other)


def test_the_command_refuses_a_folder_that_is_no_table_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["table-record", str(tmp_path / "empty"), str(tmp_path / "rec")]) == 2
    assert "holds no protocol.json" in capsys.readouterr().err
    table = fake_table(tmp_path / "out")
    assert main(["table-record", str(table), str(table / "rec")]) == 2
    assert "inside it" in capsys.readouterr().err
    assert main(["table-record", str(table), str(tmp_path / "rec")]) == 0
    assert "11 files written to" in capsys.readouterr().out
