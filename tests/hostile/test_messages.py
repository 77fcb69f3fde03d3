"""No note text, header or patient/visit id in any message (issue 25, item 1): a marker planted in notes, labels,
headers and ids goes through every error path of data loading, `evaluate`, `predict` and `lexicon`, and no line on
stderr and no warning shows it; a cell or header appears only as `redact.mask` shows it."""
import warnings

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile_student import MARKER, make_student, refused

from dsgkd.config import DataConfig
from dsgkd.data.emr import load_labelled, load_splits, load_unlabeled
from dsgkd.data.stream import iter_chunks
from dsgkd.errors import UserError
from dsgkd.redact import mask

M = MARKER
NOTE = f"{M} 3일전부터 fever and cough per mother"


def _parquet(path, columns):
    pq.write_table(pa.table(columns), path)


def _text(body, encoding="utf-8"):
    return lambda path: path.write_bytes(body.encode(encoding))


# name, how the file is written, the error's needle; each read by both `evaluate` and `predict` unless marked
BOTH = [
    ("headerless.csv", _text(f"{NOTE},1\ncough,0\n"), f"no column 'ER_DHX' (the file's 2 columns: {mask(NOTE)}, '1')"),
    ("headers.csv", _text(f"{M}_NOTE,{M}_Y\nfever,1\n"), "no column 'ER_DHX'"),
    ("headers.tsv", _text(f"{M}\tLABEL\nfever\t1\n"), "no column 'ER_DHX'"),
    ("many.csv", _text(",".join(f"{M}{i}" for i in range(12)) + "\n" + ",".join("x" * 12) + "\n"),
     "'PHI…' (14 chars), and 4 more)"),
    ("keys.jsonl", _text(f'{{"{M}": "fever", "LABEL": 1}}\n'), "no column 'ER_DHX'"),
    ("array.jsonl", _text(f'{{"ER_DHX": "fever", "LABEL": 1}}\n"{NOTE}"\n'), "line 2: expected a JSON object, got str"),
    ("broken.jsonl", _text(f'{{"ER_DHX": "{NOTE}", "LABEL": 1\n'), "line 1: not valid JSON"),
    ("cp949.csv", _text(f"ER_DHX,LABEL\n{NOTE},1\n", "cp949"), "try --encoding cp949"),
    ("headers.parquet", lambda p: _parquet(p, {M: ["fever"], "LABEL": [1]}), "no column 'ER_DHX'"),
    ("garbage.parquet", _text(f"{NOTE}\n" * 20), "not a readable Parquet file"),
    ("ragged.csv", _text(f"ER_DHX,LABEL,VISIT\nfever,1,{M}-1\n{NOTE},0,{M}-2,{M}\n"),
     "Expected 3 fields in line 3, saw 4"),
]
EVALUATE_ONLY = [
    ("label.csv", _text(f"ER_DHX,LABEL\nfever,1\ncough,\"{NOTE}\"\n"), f"data row 2 (line 3): label {mask(NOTE)}"),
    ("long_label.csv", _text("ER_DHX,LABEL\nfever,1\ncough," + M * 80_000 + "\n"), "(1040000 chars) in column"),
    ("label.jsonl", _text(f'{{"ER_DHX": "fever", "LABEL": 1}}\n{{"ER_DHX": "{NOTE}", "LABEL": "{M}"}}\n'),
     "line 2: label 'PHI…' (13 chars)"),
    ("missing_label.csv", _text(f"ER_DHX,LABEL\n{NOTE},1\n{NOTE},\n"), "data row 2 (line 3): missing label"),
    ("one_class.csv", _text(f"ER_DHX,LABEL\n{NOTE},1\n{NOTE},1\n"), "only one class (label 1)"),
    ("repeated.csv", _text(f"ER_DHX,{M},LABEL,{M}\nfever,a,1,b\n"), "column 4 of the header ('PHI…' (13 chars))"),
]
PREDICT_ONLY = [
    ("visits.csv", _text(f"ER_DHX,VISIT\nfever,{M}-1\n{NOTE},{M}-2,x\n"), "Expected 2 fields in line 3, saw 3"),
    ("no_visit.csv", _text(f"ER_DHX,{M}_VISIT\nfever,{M}\n"), "no column 'VISIT'"),
]


@pytest.fixture(scope="module")
def student(local_bert_dir, tmp_path_factory):
    return make_student(local_bert_dir, tmp_path_factory.mktemp("msgs") / "student")


def _check(command, student, tmp_path, capsys, name, write, needle):
    data = tmp_path / name
    write(data)
    out = tmp_path / "out.csv"
    tail = (["--out", str(out), "--id-col", "VISIT"] if command == "predict" else ["--json", str(out)])
    err = refused([command, "--model", str(student), "--data", str(data), *tail], capsys, [data, student])
    assert needle in err and len(err) < 400 and not out.exists()


@pytest.mark.parametrize("name, write, needle", BOTH + EVALUATE_ONLY, ids=[c[0] for c in BOTH + EVALUATE_ONLY])
def test_evaluate_never_shows_a_note_a_header_or_a_label(student, tmp_path, capsys, name, write, needle):
    _check("evaluate", student, tmp_path, capsys, name, write, needle)


@pytest.mark.parametrize("name, write, needle", BOTH + PREDICT_ONLY, ids=[c[0] for c in BOTH + PREDICT_ONLY])
def test_predict_never_shows_a_note_a_header_or_a_visit_id(student, tmp_path, capsys, name, write, needle):
    """predict copies the VISIT column with --id-col into its output, never into a message."""
    _check("predict", student, tmp_path, capsys, name, write, needle)


def test_a_declared_class_list_masks_the_label_too(local_bert_dir, tmp_path, capsys):
    student = make_student(local_bert_dir, tmp_path / "student", classes=["routine", "urgent"])
    _check("evaluate", student, tmp_path, capsys, "classes.csv",
           _text(f"ER_DHX,LABEL\nfever,urgent\ncough,{M}\n"),
           "label 'PHI…' (13 chars) in column 'LABEL' is not one of the declared classes")


def _notes_with_patients(tmp_path, n=60):
    rows = [f"{NOTE} {i},{i % 2},{M}-{i % 12:02d}" for i in range(n)]
    path = tmp_path / "notes.csv"
    path.write_text("ER_DHX,LABEL,PT_ID\n" + "\n".join(rows) + "\n")
    return path


def test_the_group_overlap_warning_a_search_trial_logs_names_no_patient(tmp_path, capsys):
    """Every trial of a search loads its splits (search/tune.py, pipeline/prepare.py) and Ray keeps what it
    prints and warns in the trial's log; given explicit val/test files that share patients with training, the
    warning counts them and names none."""
    path = _notes_with_patients(tmp_path)
    cfg = DataConfig(path=str(path), val_path=str(path), test_path=str(path), text_col="ER_DHX",
                     label_col="LABEL", group_col="PT_ID")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_splits(cfg)
    shown = [str(w.message) for w in caught] + [capsys.readouterr().err]
    assert any("12 groups (column 'PT_ID') appear in both train and val" in s for s in shown)
    assert not any(M in s for s in shown)


@pytest.mark.parametrize("load, needle", [
    (lambda p: load_labelled(_write(p, f"ER_DHX,LABEL,PT_ID\n{NOTE},1,{M}\n{NOTE},0,\n"), "ER_DHX", "LABEL",
                             group_col="PT_ID"), "data row 2 (line 3): missing value in group column 'PT_ID'"),
    (lambda p: load_splits(DataConfig(path=str(_write(p, "ER_DHX,LABEL,PT_ID\n" + "".join(
        f"{NOTE},{i % 2},{M}-{i % 2}\n" for i in range(20)))), text_col="ER_DHX", label_col="LABEL",
        group_col="PT_ID")), "only 2 distinct groups"),
    (lambda p: load_unlabeled(_write(p, f"{NOTE}\ncough\n"), "ER_DHX"), "no column 'ER_DHX'"),
    (lambda p: list(iter_chunks(_write(p, f"{NOTE}\ncough\n"), ["ER_DHX", "VISIT"])), "no column 'ER_DHX'"),
])
def test_the_loaders_own_messages_hold_no_marker(tmp_path, load, needle):
    with pytest.raises(UserError) as e:
        load(tmp_path / "notes.csv")
    assert needle in str(e.value) and M not in str(e.value) and "\n" not in str(e.value)


def _write(path, text):
    path.write_text(text)
    return path


def test_lexicon_never_shows_a_header_of_the_notes(tmp_path, capsys):
    notes = _write(tmp_path / "notes.csv", f"{NOTE}\ncough\n")
    corpus = _write(tmp_path / "corpus.csv", "ER_DHX\nfever is a symptom\n")
    out = tmp_path / "terms.txt"
    err = refused(["lexicon", "--notes", str(notes), "--text-col", "ER_DHX", "--corpus", str(corpus),
                   "--out", str(out)], capsys, [notes, corpus])
    assert "no column 'ER_DHX'" in err and not out.exists()


def test_a_real_search_prints_and_writes_no_note_text_or_patient_id(tmp_path):
    """One tiny trial of a real search (its own Ray, a teacher cache built as a Ray task) on notes and patient ids
    that carry the marker, with val/test files sharing patients with training so the overlap warning fires in
    the driver and in the trial: nothing it printed (Ray forwards the workers' lines) and no file under RUN
    holds the marker."""
    import subprocess
    import sys

    import yaml

    rows = [f"{NOTE} {'vomiting' if i % 2 else 'cough'} x{i},{i % 2},{M}-P{i % 30}" for i in range(90)]
    for name, part in (("train", rows[:60]), ("val", rows[30:70]), ("test", rows[50:90])):
        (tmp_path / f"{name}.csv").write_text("ER_DHX,LABEL,PT_ID\n" + "\n".join(part) + "\n")
    space = {"base": {"data": {"path": str(tmp_path / "train.csv"), "val_path": str(tmp_path / "val.csv"),
                               "test_path": str(tmp_path / "test.csv"), "text_col": "ER_DHX", "label_col": "LABEL",
                               "group_col": "PT_ID"},
                      "train": {"epochs": 1, "batch_size": 16, "max_length": 48, "patience": 1}},
             "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}], "layer_maps": ["uniform"],
             "params": {"distill.alpha": {"type": "categorical", "choices": [0.5]}},
             "budget": {"num_samples": 1, "workers_per_trial": 1, "cpus_per_worker": 1}, "seed": 0,
             "include_paper_defaults": False}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "dsgkd.cli", "search", "--space", str(tmp_path / "space.yaml"),
                           "--out", str(run)], capture_output=True, text=True, timeout=600)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed[-3000:]
    assert "groups (column 'PT_ID') appear in both" in printed and M not in printed
    written = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "result.json" for p in written)
    assert not [str(p.relative_to(run)) for p in written if M.encode() in p.read_bytes()]
