"""A damaged student directory and damaged inputs to `predict` / `evaluate` (issue 25, item 8): each is one line
naming the file, exit 2, with the student and the data untouched and nothing written."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hostile_student import MARKER, make_student, refused
from safetensors.torch import load_file, save_file

from dsgkd.cli import main


@pytest.fixture
def notes(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("ER_DHX,LABEL\n" + "".join(f"fever {MARKER} cough {i},{i % 2}\n" for i in range(12)))
    return path


def _meta(**fields):
    def edit(student):
        meta = json.loads((student / "dsgkd.json").read_text())
        for key, value in fields.items():
            if value is _DROP:
                meta.pop(key)
            else:
                meta[key] = value
        (student / "dsgkd.json").write_text(json.dumps(meta))  # NaN and Infinity as Python's json writes them
    return edit


def _write(name, content):
    def edit(student):
        (student / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return edit


def _truncate(student):
    path = student / "model.safetensors"
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _remove(name):
    return lambda student: (student / name).unlink()


def _weights(change):
    def edit(student):
        tensors = load_file(student / "model.safetensors")
        save_file(change(tensors), student / "model.safetensors")
    return edit


def _json_edit(name, **fields):
    def edit(student):
        data = json.loads((student / name).read_text())
        (student / name).write_text(json.dumps({**data, **fields}))
    return edit


def _drop_key(name, key):
    def edit(student):
        data = json.loads((student / name).read_text())
        data.pop(key)
        (student / name).write_text(json.dumps(data))
    return edit


_DROP = object()
_WIDER_HEAD = {"classifier.weight": lambda t: torch.zeros(3, t.shape[1])}

DAMAGE = [
    (_truncate, "model.safetensors: damaged, truncated"),
    (_write("model.safetensors", b"\xff" * 64), "model.safetensors: damaged, truncated"),
    (_write("model.safetensors", b""), "model.safetensors: damaged, truncated"),
    (_weights(lambda t: {"unrelated": torch.zeros(1)}), "model.safetensors: lacks or misshapes"),
    (_weights(lambda t: {k: _WIDER_HEAD.get(k, lambda v: v)(v) for k, v in t.items()}),
     "model.safetensors: damaged, truncated or another model's weights"),
    (_remove("model.safetensors"), "no weights (model.safetensors)"),
    (_meta(threshold=float("nan")), "dsgkd.json: threshold nan must be a finite probability in [0, 1]"),
    (_meta(threshold=1.5), "dsgkd.json: threshold 1.5"),
    (_meta(threshold=-0.01), "dsgkd.json: threshold -0.01"),
    (_meta(threshold="0.5"), "dsgkd.json: threshold '0.5'"),
    (_meta(threshold=_DROP), "dsgkd.json: threshold None"),
    (_meta(temperature=float("inf")), "dsgkd.json: temperature inf must be a finite number > 0"),
    (_meta(temperature=0), "dsgkd.json: temperature 0 must be a finite number > 0"),
    (_meta(format="2"), "dsgkd.json: format '2' is not a format number"),
    (_meta(batch_size=0), "dsgkd.json: batch_size 0 must be a whole number >= 1"),
    (_meta(max_length=64.5), "dsgkd.json: max_length 64.5"),
    (_meta(text_col=_DROP), "dsgkd.json: text_col is missing"),
    (_meta(long_notes="sliding"), "dsgkd.json: long_notes 'sli…' (7 chars) is not one of truncate, head_tail, windows"),
    (_remove("dsgkd.json"), "no dsgkd.json here"),
    (_write("dsgkd.json", '{"threshold": 0.5,'), "dsgkd.json: not readable JSON"),
    (_write("dsgkd.json", b"\xff\xfe{}"), "dsgkd.json: not readable JSON"),
    (_write("dsgkd.json", "[0.5]"), "dsgkd.json: expected a JSON object, got list"),
    (_remove("tokenizer.json"), "the tokenizer's vocabulary is missing (none of vocab.txt, tokenizer.json)"),
    (_write("tokenizer.json", '{"model": '), "tokenizer.json: not readable JSON"),
    (_remove("tokenizer_config.json"), "no tokenizer here (tokenizer_config.json)"),
    (_json_edit("config.json", vocab_size=50), "the tokenizer has"),
    (_write("config.json", "{"), "config.json: not readable JSON"),
    (_drop_key("config.json", "model_type"), "config.json: not a Hugging Face model config"),
    (_remove("config.json"), "no config.json"),
]


COMMANDS = {"predict": ("--out", "preds.csv"), "evaluate": ("--json", "eval.json")}
# evaluate loads the student as predict does: the first case of damaged weights, of metadata and of a tokenizer
EVALUATE_CASES = [next(case for case in DAMAGE if case[1] == needle) for needle in (
    "model.safetensors: damaged, truncated", "dsgkd.json: threshold nan must be a finite probability in [0, 1]",
    "the tokenizer's vocabulary is missing (none of vocab.txt, tokenizer.json)")]


def refused_on(command, local_bert_dir, tmp_path, notes, capsys, damage, needle):
    """`dsgkd COMMAND` on a student damaged by `damage`: refused in one line holding `needle`, nothing written."""
    student = make_student(local_bert_dir, tmp_path / "student")
    damage(student)
    flag, name = COMMANDS[command]
    out = tmp_path / name
    err = refused([command, "--model", str(student), "--data", str(notes), flag, str(out)], capsys,
                  [student, notes])
    assert needle in err and not out.exists()


@pytest.mark.parametrize("damage, needle", DAMAGE)
def test_a_damaged_student_is_one_line_naming_the_file(local_bert_dir, tmp_path, notes, capsys, damage, needle):
    refused_on("predict", local_bert_dir, tmp_path, notes, capsys, damage, needle)


@pytest.mark.parametrize("damage, needle", EVALUATE_CASES)
def test_evaluate_refuses_the_same_damage(local_bert_dir, tmp_path, notes, capsys, damage, needle):
    refused_on("evaluate", local_bert_dir, tmp_path, notes, capsys, damage, needle)


def test_an_intact_student_scores(local_bert_dir, tmp_path, notes, capsys):
    """The checks above refuse damage, not the directory every case starts from."""
    student = make_student(local_bert_dir, tmp_path / "student")
    assert main(["predict", "--model", str(student), "--data", str(notes), "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("\n") == 13


def test_predict_with_a_missing_data_file_leaves_an_existing_out_alone(local_bert_dir, tmp_path, capsys):
    student = make_student(local_bert_dir, tmp_path / "student")
    out = tmp_path / "preds.csv"
    out.write_text("id,prob,label\nkept,0.5,1\n")
    err = refused(["predict", "--model", str(student), "--data", str(tmp_path / "gone.csv"), "--out", str(out)],
                  capsys, [student, out])
    assert "--data" in err and "gone.csv: no such file" in err


def _damaged_parquet(path):
    """A Parquet file whose second row group's first page header is overwritten: the footer still reads."""
    notes = {"ER_DHX": [f"fever {MARKER} {i}" for i in range(40)], "LABEL": [i % 2 for i in range(40)]}
    pq.write_table(pa.table(notes), path, row_group_size=20)
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    offset = column.dictionary_page_offset or column.data_page_offset
    raw = bytearray(path.read_bytes())
    raw[offset:offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_damaged_parquet_page_is_one_line_naming_its_rows(local_bert_dir, tmp_path, capsys, command):
    student = make_student(local_bert_dir, tmp_path / "student")
    data = _damaged_parquet(tmp_path / "notes.parquet")
    out = tmp_path / "out.csv"
    tail = ["--out", str(out), "--chunk-rows", "20"] if command == "predict" else ["--json", str(out)]
    # predict scores the first row group before it reads the damaged one: progress lines, then the error
    assert main([command, "--model", str(student), "--data", str(data), *tail]) == 2
    *progress, err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("predict: ") for line in progress) and "Traceback" not in err
    assert err.startswith(f"dsgkd {command}: error: ") and MARKER not in err
    assert "notes.parquet: rows 21-40 of this Parquet file are damaged" in err and not out.exists()
