"""dsgkd.data.emr: every user mistake becomes one UserError line that names the file, column or row."""
from __future__ import annotations

import json
import warnings

import datasets
import numpy as np
import pandas as pd
import pytest

from dsgkd.config import DataConfig
from dsgkd.data.emr import Splits, load_labelled, load_splits, load_unlabeled, read_table
from dsgkd.errors import UserError


def _notes(n: int = 200, pos: float = 0.4, groups: int | None = None) -> pd.DataFrame:
    k = int(n * pos)
    df = pd.DataFrame({"ER_DHX": [f"3일전부터 fever, note {i}" for i in range(n)],
                       "LABEL": [1] * k + [0] * (n - k)})
    if groups:
        df["PT_ID"] = [f"P{i % groups:03d}" for i in range(n)]
    return df


def _csv(tmp_path, df: pd.DataFrame, name: str = "notes.csv", **kw):
    p = tmp_path / name
    df.to_csv(p, index=False, **kw)
    return p


def _err(fn, *a, **kw) -> str:
    with pytest.raises(UserError) as ei:
        fn(*a, **kw)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    return msg


# ----------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl", ".json"])
def test_formats_load_the_same(tmp_path, suffix):
    df = _notes(20)
    p = tmp_path / f"n{suffix}"
    if suffix == ".csv":
        df.to_csv(p, index=False)
    elif suffix == ".tsv":
        df.to_csv(p, index=False, sep="\t")
    elif suffix == ".parquet":
        df.to_parquet(p)
    elif suffix == ".jsonl":
        df.to_json(p, orient="records", lines=True, force_ascii=False)
    else:
        p.write_text(json.dumps(df.to_dict("records"), ensure_ascii=False), encoding="utf-8")
    ds, dropped = load_labelled(p, "ER_DHX", "LABEL")
    assert dropped == 0 and ds.column_names == ["text", "label"]
    assert ds["text"] == df.ER_DHX.tolist() and ds["label"] == df.LABEL.tolist()
    assert ds.features["label"].dtype == "int64"


def test_datasets_dir(tmp_path):
    datasets.Dataset.from_pandas(_notes(10)).save_to_disk(str(tmp_path / "ds"))
    ds, _ = load_labelled(tmp_path / "ds", "ER_DHX", "LABEL")
    assert len(ds) == 10
    datasets.DatasetDict(a=datasets.Dataset.from_pandas(_notes(10)),
                         b=datasets.Dataset.from_pandas(_notes(10))).save_to_disk(str(tmp_path / "dd"))
    assert "splits ['a', 'b']" in _err(load_labelled, tmp_path / "dd", "ER_DHX", "LABEL")
    (tmp_path / "empty_dir").mkdir()
    assert "empty_dir" in _err(read_table, tmp_path / "empty_dir")


def test_cp949(tmp_path):
    df = _notes(10)
    df.loc[0, "ER_DHX"] = "생후 2개월 남아, BT 38.5°C, 처짐"
    p = _csv(tmp_path, df, encoding="cp949")
    ds, _ = load_labelled(p, "ER_DHX", "LABEL", encoding="cp949")
    assert ds["text"][0] == "생후 2개월 남아, BT 38.5°C, 처짐"
    msg = _err(load_labelled, p, "ER_DHX", "LABEL")
    assert str(p) in msg and "not valid utf-8" in msg and "--encoding cp949" in msg and "line 2" in msg
    assert "unknown encoding" in _err(load_labelled, p, "ER_DHX", "LABEL", encoding="nope-42")


def test_utf8_bom(tmp_path):
    p = _csv(tmp_path, _notes(10), encoding="utf-8-sig")
    ds, _ = load_labelled(p, "ER_DHX", "LABEL")
    assert len(ds) == 10


# ------------------------------------------------------------------------------------ errors
def test_missing_file_and_unsupported_format(tmp_path):
    assert "no such file" in _err(load_labelled, tmp_path / "nope.csv", "t", "l")
    x = tmp_path / "notes.xlsx"
    x.write_bytes(b"PK\x03\x04")
    assert "unsupported format '.xlsx'" in _err(load_labelled, x, "t", "l")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert "bad.parquet: not a readable Parquet file" in _err(load_labelled, bad, "t", "l")


def test_no_rows(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "empty.csv: no rows" in _err(load_labelled, empty, "ER_DHX", "LABEL")
    header = tmp_path / "header.csv"
    header.write_text("ER_DHX,LABEL\n")
    assert "header.csv: no rows" in _err(load_labelled, header, "ER_DHX", "LABEL")
    blank = _csv(tmp_path, pd.DataFrame({"ER_DHX": ["", "  "], "LABEL": [0, 1]}), "blank.csv")
    with pytest.warns(UserWarning):
        assert "no rows left after dropping 2" in _err(load_labelled, blank, "ER_DHX", "LABEL")


def test_missing_column_lists_existing(tmp_path):
    p = _csv(tmp_path, _notes(10))
    msg = _err(load_labelled, p, "text", "LABEL")
    assert "no column 'text'" in msg and "2 columns: 'ER_…' (6 chars), 'LAB…' (5 chars)" in msg and str(p) in msg
    assert "no column 'PID'" in _err(load_labelled, p, "ER_DHX", "LABEL", group_col="PID")


@pytest.mark.parametrize("sep, suffix, encoding", [(",", ".csv", "utf-8"), ("\t", ".tsv", "cp949")])
def test_repeated_column_name_is_named_not_renamed(tmp_path, sep, suffix, encoding):
    """pandas would read the second 진단 as 진단.1 and the run would train on the first one."""
    p = tmp_path / f"dup{suffix}"
    p.write_bytes(sep.join(["진단", "LABEL", "진단"]).encode(encoding) + b"\n"
                  + sep.join(["fever", "1", "cough"]).encode(encoding) + b"\n")
    msg = _err(load_labelled, p, "진단", "LABEL", encoding=encoding)
    assert str(p) in msg and "column 3 of the header ('진단') repeats" in msg
    assert list(read_table(_csv(tmp_path, _notes(4), "ok.csv")).columns) == ["ER_DHX", "LABEL"]


def test_repeated_column_name_in_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array(["fever"]), pa.array([1]), pa.array(["x"])], names=["ER_DHX", "LABEL", "LABEL"]), p)
    msg = _err(load_labelled, p, "ER_DHX", "LABEL")
    assert "dup.parquet" in msg and "column 3 of the header ('LAB…' (5 chars)) repeats" in msg


def test_bad_label_names_row_and_value(tmp_path):
    df = _notes(10).astype({"LABEL": str})
    df.loc[4, "LABEL"] = "2"
    msg = _err(load_labelled, _csv(tmp_path, df), "ER_DHX", "LABEL")
    assert "data row 5 (line 6)" in msg and "'2'" in msg and "'LABEL'" in msg and "notes.csv" in msg
    df.loc[1, "ER_DHX"] = "line one\nline two\n\tline four"  # quoted newlines shift the line number
    msg = _err(load_labelled, _csv(tmp_path, df), "ER_DHX", "LABEL")
    assert "data row 5 (line 8)" in msg


def test_missing_label_names_row(tmp_path):
    df = _notes(10).astype({"LABEL": object})
    df.loc[6, "LABEL"] = None
    assert "data row 7 (line 8): missing label in column 'LABEL'" in _err(load_labelled, _csv(tmp_path, df),
                                                                  "ER_DHX", "LABEL")
    p = tmp_path / "n.jsonl"
    p.write_text('{"t": "a", "y": 1}\n\n{"t": "b", "y": null}\n', encoding="utf-8")
    assert "line 3: missing label" in _err(load_labelled, p, "t", "y")


def test_bad_json_line(tmp_path):
    p = tmp_path / "n.jsonl"
    p.write_text('{"t": "a", "y": 1}\n{"t": "b", "y": \n', encoding="utf-8")
    assert "n.jsonl: line 2: not valid JSON" in _err(load_labelled, p, "t", "y")


def test_one_class(tmp_path):
    p = _csv(tmp_path, _notes(10, pos=0.0))
    assert "only one class (label 0)" in _err(load_labelled, p, "ER_DHX", "LABEL")


def test_label_spellings(tmp_path):
    df = pd.DataFrame({"t": list("abcdef"), "y": ["0", "1", "1.0", " 0 ", "0", "1"]})
    ds, _ = load_labelled(_csv(tmp_path, df), "t", "y")
    assert ds["label"] == [0, 1, 1, 0, 0, 1]
    pdf = pd.DataFrame({"t": list("abcd"), "y": [True, False, True, False]})
    pdf.to_parquet(tmp_path / "b.parquet")
    assert load_labelled(tmp_path / "b.parquet", "t", "y")[0]["label"] == [1, 0, 1, 0]


def test_declared_classes(tmp_path):
    df = pd.DataFrame({"t": list("abcd"), "y": ["yes", "no", "no", "yes"]})
    p = _csv(tmp_path, df)
    ds, _ = load_labelled(p, "t", "y", classes=["no", "yes"])
    assert ds["label"] == [1, 0, 0, 1]
    ds, _ = load_labelled(p, "t", "y", classes=["yes", "no"])
    assert ds["label"] == [0, 1, 1, 0]
    msg = _err(load_labelled, p, "t", "y")  # default 0/1
    assert "data row 1" in msg and "'yes'" in msg and "0 or 1" in msg
    msg = _err(load_labelled, p, "t", "y", classes=["no", "maybe"])
    assert "data row 1" in msg and "declared classes" in msg
    three = pd.DataFrame({"t": list("abc"), "y": ["lo", "mid", "hi"]})
    ds, _ = load_labelled(_csv(tmp_path, three, "3.csv"), "t", "y", classes=["lo", "mid", "hi"])
    assert ds["label"] == [0, 1, 2]


def test_empty_text_dropped_and_counted(tmp_path):
    df = _notes(20).astype({"ER_DHX": object})
    df.loc[[2, 5], "ER_DHX"] = ["", " \t "]
    df.loc[9, "ER_DHX"] = None
    p = _csv(tmp_path, df)
    with pytest.warns(UserWarning, match=r"dropped 3 rows with empty text in .*notes\.csv"):
        ds, dropped = load_labelled(p, "ER_DHX", "LABEL")
    assert dropped == 3 and len(ds) == 17
    with pytest.warns(UserWarning):
        sp = load_splits(DataConfig(path=str(p), text_col="ER_DHX", label_col="LABEL",
                                    val_frac=0.2, test_frac=0.2))
    assert sp.dropped_empty == 3


def test_missing_group_value(tmp_path):
    df = _notes(10, groups=3).astype({"PT_ID": object})
    df.loc[3, "PT_ID"] = None
    assert "data row 4 (line 5): missing value in group column 'PT_ID'" in _err(
        load_labelled, _csv(tmp_path, df), "ER_DHX", "LABEL", group_col="PT_ID")


# ------------------------------------------------------------------------------------ splits
def _cfg(path, **kw) -> DataConfig:
    return DataConfig(path=str(path), text_col="ER_DHX", label_col="LABEL", **kw)


def test_stratified_split_proportions_and_seed(tmp_path):
    p = _csv(tmp_path, _notes(400, pos=0.3))
    sp = load_splits(_cfg(p))
    assert isinstance(sp, Splits)
    assert (len(sp.train), len(sp.val), len(sp.test)) == (280, 60, 60)
    for ds in (sp.train, sp.val, sp.test):
        assert abs(np.mean(ds["label"]) - 0.3) < 0.02
    assert set(sp.train["text"]).isdisjoint(sp.val["text"]) and set(sp.val["text"]).isdisjoint(sp.test["text"])
    again = load_splits(_cfg(p))
    assert again.fingerprint == sp.fingerprint and again.test["text"] == sp.test["text"]
    other = load_splits(_cfg(p, split_seed=1))
    assert other.fingerprint != sp.fingerprint and len(sp.fingerprint) == 16
    assert other.fit_fingerprint != sp.fit_fingerprint


def test_a_new_test_split_keeps_the_fit_fingerprint_a_new_training_note_does_not(tmp_path):
    """Fine-tuned teachers and teacher caches key on what a fit reads (train and validation): a table that draws a
    new test split reuses them, one changed training note does not."""
    notes = _notes(300, pos=0.4).sample(frac=1.0, random_state=0)  # both classes in every slice
    train, val = _csv(tmp_path, notes.iloc[:200], "tr.csv"), _csv(tmp_path, notes.iloc[200:250], "va.csv")
    other = notes.iloc[250:].assign(ER_DHX=lambda d: d.ER_DHX + " 재방문")
    tests = [_csv(tmp_path, notes.iloc[250:], "te0.csv"), _csv(tmp_path, other, "te1.csv")]
    a, b = (load_splits(_cfg(train, val_path=str(val), test_path=str(t))) for t in tests)
    assert a.fingerprint != b.fingerprint and a.fit_fingerprint == b.fit_fingerprint
    changed = notes.iloc[:200].copy()
    changed.iloc[0, changed.columns.get_loc("ER_DHX")] += " 재방문"
    c = load_splits(_cfg(_csv(tmp_path, changed, "tr2.csv"), val_path=str(val), test_path=str(tests[0])))
    assert c.fit_fingerprint != a.fit_fingerprint


def test_group_split_no_overlap(tmp_path):
    df = _notes(300, groups=60)
    df["LABEL"] = [int(i % 60 < 24) for i in range(300)]  # label constant within a patient
    sp = load_splits(_cfg(_csv(tmp_path, df), group_col="PT_ID"))
    g = [set(ds["group"]) for ds in (sp.train, sp.val, sp.test)]
    assert not (g[0] & g[1] or g[0] & g[2] or g[1] & g[2])
    assert sum(map(len, g)) == 60 and sp.train.column_names == ["text", "label", "group"]
    assert 0.1 < len(sp.test) / 300 < 0.2 and 0.1 < len(sp.val) / 300 < 0.2


def test_too_few_groups(tmp_path):
    p = _csv(tmp_path, _notes(20, groups=3))
    assert "only 3 distinct groups" in _err(load_splits, _cfg(p, group_col="PT_ID"))


def test_val_and_test_files(tmp_path):
    tr = _csv(tmp_path, _notes(100), "train.csv")
    va = _csv(tmp_path, _notes(30), "val.csv")
    te = _csv(tmp_path, _notes(40), "test.csv")
    sp = load_splits(_cfg(tr, val_path=str(va), test_path=str(te)))
    assert (len(sp.train), len(sp.val), len(sp.test)) == (100, 30, 40)
    sp = load_splits(_cfg(tr, val_path=str(va)))  # test is cut from train
    assert (len(sp.train), len(sp.val), len(sp.test)) == (85, 30, 15)
    sp = load_splits(_cfg(tr, test_path=str(te)))  # val is cut from train
    assert (len(sp.train), len(sp.val), len(sp.test)) == (85, 15, 40)
    bad = _csv(tmp_path, _notes(10, pos=1.0), "oneclass.csv")
    assert "oneclass.csv: only one class" in _err(load_splits, _cfg(tr, val_path=str(bad)))


def test_split_too_small(tmp_path):
    p = _csv(tmp_path, pd.DataFrame({"ER_DHX": list("abcde"), "LABEL": [0, 0, 0, 0, 1]}))
    msg = _err(load_splits, _cfg(p))
    assert "notes.csv" in msg and "cannot cut" in msg


def test_path_required():
    assert "data.path" in _err(load_splits, DataConfig())


# -------------------------------------------------------------------------------- unlabelled
def test_load_unlabeled(tmp_path):
    p = _csv(tmp_path, pd.DataFrame({"ER_DHX": ["a", "", "b", "c"]}))
    with pytest.warns(UserWarning, match="dropped 1"):
        assert load_unlabeled(p, "ER_DHX") == ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_unlabeled(p, "ER_DHX", limit=2) == ["a", "b"]
    assert "no column 'x'" in _err(load_unlabeled, p, "x")
    t = tmp_path / "u.txt"
    t.write_text("one\n\ntwo\n", encoding="utf-8")
    with pytest.warns(UserWarning):
        assert load_unlabeled(t, "ignored") == ["one", "two"]
