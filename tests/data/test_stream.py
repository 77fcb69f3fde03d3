"""Chunked reading for `dsgkd predict`: the same rows and the same one-line errors as the whole-file loader."""
import json

import numpy as np
import pandas as pd
import pytest

from dsgkd.data import stream
from dsgkd.data.emr import read_table
from dsgkd.data.stream import check_encoding, iter_chunks
from dsgkd.errors import UserError

IDS = ["007", "8", "9", "10", "11"]
TEXTS = ["3일전부터 fever", "multi\nline, \"quoted\" note", None, "r/o AGE", "기침 cough"]
NOTES = pd.DataFrame({"ID": IDS, "TEXT": TEXTS})


def _message(fn, *args) -> str:
    with pytest.raises(UserError) as e:
        fn(*args)
    return str(e.value)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize("encoding, body", [
    ("utf-8", "ID,TEXT\n1,fever\n2,열 cough\n".encode("cp949")),  # cp949 bytes read as UTF-8
    ("cp949", "ID,TEXT\n1,fever\n2,".encode() + b"\xff\xff\n"),   # bytes no Korean codec decodes
    ("utf-8", "ID,TEXT\n1,열\n".encode() + b"\xe2\x82"),          # a character cut off by the end of the file
])
def test_a_bad_byte_is_named_as_the_whole_file_loader_names_it(tmp_path, monkeypatch, block, encoding, body):
    path = tmp_path / "notes.csv"
    path.write_bytes(body)
    monkeypatch.setattr(stream, "BLOCK", block)
    assert _message(check_encoding, path, encoding) == _message(read_table, path, encoding)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("rows", [1, 2, 100])
def test_chunks_are_the_files_rows_in_order(tmp_path, suffix, rows):
    path = tmp_path / f"notes{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"ID": i, **({"TEXT": t} if t else {})}, ensure_ascii=False) + "\n"
                                for i, t in zip(IDS, TEXTS)), encoding="utf-8")
    elif suffix == ".parquet":
        NOTES.to_parquet(path)
    else:
        NOTES.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    chunks = list(iter_chunks(path, ["TEXT", "ID"], rows=rows))
    assert all(len(c) <= rows for c, _ in chunks) and len(chunks) == -(-len(NOTES) // rows)
    done = [f for _, f in chunks]
    assert done == sorted(done) and done[-1] == 1.0
    got = pd.concat([c for c, _ in chunks], ignore_index=True)
    assert list(got.columns) == ["TEXT", "ID"]
    assert list(got["ID"]) == IDS
    assert [None if pd.isna(t) else t for t in got["TEXT"]] == TEXTS


def test_a_json_array_file_reads_as_json_lines_do(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text(json.dumps([{"TEXT": "fever", "ID": 1}, {"TEXT": "cough", "ID": 2}, {"TEXT": "rash", "ID": 3}]))
    chunks = [c for c, _ in iter_chunks(path, ["TEXT"], rows=2)]
    assert [list(c["TEXT"]) for c in chunks] == [["fever", "cough"], ["rash"]]


@pytest.mark.parametrize("name, body, needle", [
    ("notes.csv", "ID,NOTE\n1,fever\n", "no column 'TEXT' (the file's 2 columns: 'ID', 'NOT…' (4 chars))"),
    ("notes.csv", "TEXT,ID\na,1\nb,2,3,4\n", "Expected 2 fields in line 3, saw 4"),  # as emr, though TEXT is whole
    ("notes.jsonl", '{"ID": 1, "NOTE": "fever"}\n', "no column 'TEXT'"),
    ("notes.jsonl", '{"TEXT": "fever"}\n[1, 2]\n', "line 2: expected a JSON object"),
    ("notes.jsonl", '{"TEXT": "fever"}\n{"TEXT": \n', "line 2: not valid JSON"),
    ("notes.parquet", "not parquet", "not a readable Parquet file"),
    ("notes.csv", "", "no rows (the file is empty)"),
    ("notes.xlsx", "x", "unsupported format '.xlsx'"),
])
def test_bad_files_are_one_line_errors(tmp_path, name, body, needle):
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(UserError) as e:
        list(iter_chunks(path, ["TEXT"]))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_checks_that_can_fail_early_fail_before_the_first_chunk(tmp_path):
    """Columns and encoding are checked when the reader is made, so a caller opens no output for a bad file."""
    path = tmp_path / "notes.csv"
    path.write_bytes(b"TEXT\nfever\n" + "열".encode("cp949") + b"\n")
    with pytest.raises(UserError, match="try --encoding cp949"):
        iter_chunks(path, ["TEXT"])
    with pytest.raises(UserError, match="no column 'ID'"):
        iter_chunks(path, ["TEXT", "ID"], encoding="cp949")
    assert np.concatenate([c["TEXT"].to_numpy() for c, _ in iter_chunks(path, ["TEXT"], "cp949")]).tolist() == \
        ["fever", "열"]
