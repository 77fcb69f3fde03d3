"""Hostile paths: an output that is, holds or lies inside an input, or collides with another output, is refused in
one line (exit 2) before any data, tokenizer or model is loaded, and every file is byte-identical afterwards."""
import hashlib
import os
from pathlib import Path

import pytest

import dsgkd.pipeline.resolve
import dsgkd.pipeline.serve
from dsgkd.cli import main

MARKER = "PHI_MARKER_7Q"


def tree(root: Path) -> dict[str, str]:
    """Every entry under root: a file's sha256, a folder, or a link's target."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A user's folder: notes with a marker in every cell and header, a config, a student, a search run."""
    home = tmp_path / "home"
    data = home / "data"
    data.mkdir(parents=True)
    (data / "notes.csv").write_text(f"ER_DHX_{MARKER},LABEL\n{MARKER} fever,1\n{MARKER} cough,0\n", encoding="utf-8")
    (data / "corpus.csv").write_text(f"ER_DHX\n{MARKER} fever is a term\n", encoding="utf-8")
    (home / "run.yaml").write_text(f"data:\n  path: {home / 'runs' / 'first' / 'notes.csv'}\n", encoding="utf-8")
    (home / "runs" / "first").mkdir(parents=True)
    (home / "runs" / "first" / "notes.csv").write_text(f"ER_DHX,LABEL\n{MARKER},1\n", encoding="utf-8")
    student = home / "student"
    student.mkdir()
    (student / "dsgkd.json").write_text('{"threshold": 0.5}', encoding="utf-8")
    run = home / "search"
    (run / "tune").mkdir(parents=True)
    (run / "space.yaml").write_text("pairs: []\n", encoding="utf-8")
    (run / "results.json").write_text("{}", encoding="utf-8")
    (data / "link.csv").symlink_to(data / "notes.csv")
    os.link(data / "notes.csv", data / "hard.csv")
    (home / "a-file").write_text("x", encoding="utf-8")
    (tmp_path / "cwd" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd" / "deeper")

    def loaded(*args, **kwargs):
        raise AssertionError("a model or data was loaded before the paths were checked")

    monkeypatch.setattr(dsgkd.pipeline.resolve, "resolve_run", loaded)
    monkeypatch.setattr(dsgkd.pipeline.serve, "load_student", loaded)
    return home


TRAIN = ["train", "--text-col", "ER_DHX", "--label-col", "LABEL", "--teacher", "kmbert-tiny", "--student",
         "kobert-tiny"]
CASES = {
    "train --out is the data": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", "{h}/data/notes.csv",
                                 "--overwrite"], "is the input file --data"),
    "train --overwrite on the data's folder": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", "{h}/data",
                                                "--overwrite"], "holds the input --data"),
    "train --out on an ancestor of the data": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", "{h}",
                                                "--overwrite"], "holds the input --data"),
    "train --out is the working directory": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", ".", "--overwrite"],
                                             "is the working directory"),
    "train --out holds the working directory": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", "..",
                                                 "--overwrite"], "is the working directory or holds it"),
    "train --out holds --config's data": ([*TRAIN, "--config", "{h}/run.yaml", "--out", "{h}/runs/first",
                                           "--overwrite"], "holds the input --data"),
    "train --out holds the config": ([*TRAIN, "--config", "{h}/run.yaml", "--out", "{h}", "--overwrite"],
                                     "holds the input --config"),
    "train --out is a local teacher": ([*TRAIN[:-4], "--teacher", "{h}/student", "--student", "kobert-tiny",
                                        "--data", "{h}/data/notes.csv", "--out", "{h}/student", "--overwrite"],
                                       "is the input folder --teacher"),
    "train --out under a regular file": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", "{h}/a-file/run"],
                                         "is a file, not a folder"),
    "train --out is a symlink to the data": ([*TRAIN, "--data", "{h}/data/notes.csv", "--out", "{h}/data/link.csv",
                                              "--overwrite"], "is the input file --data"),
    "evaluate --json is the data": (["evaluate", "--model", "{h}/student", "--data", "{h}/data/notes.csv", "--json",
                                     "{h}/data/notes.csv"], "is the input file --data"),
    "evaluate --json is a folder": (["evaluate", "--model", "{h}/student", "--data", "{h}/data/notes.csv", "--json",
                                     "{h}/data"], "is a directory"),
    "evaluate --json is the student's dsgkd.json": (["evaluate", "--model", "{h}/student", "--data",
                                                     "{h}/data/notes.csv", "--json", "{h}/student/dsgkd.json"],
                                                    "is part of the input --model"),
    "evaluate --json is a plot": (["evaluate", "--model", "{h}/student", "--data", "{h}/data/notes.csv", "--json",
                                   "{h}/plots/roc.png", "--plots", "{h}/plots"], "both name"),
    "predict --out is a hard link to the data": (["predict", "--model", "{h}/student", "--data", "{h}/data/notes.csv",
                                                  "--out", "{h}/data/hard.csv"], "is the input file --data"),
    "predict --out is the model": (["predict", "--model", "{h}/student", "--data", "{h}/data/notes.csv", "--out",
                                    "{h}/student"], "is a directory"),
    "synth --out and --corpus are one file": (["synth", "--n", "20", "--out", "{h}/s.csv", "--corpus", "{h}/s.csv"],
                                              "both name"),
    "synth --corpus over a benchmark split": (["synth", "--benchmark", "{h}/bench", "--corpus",
                                               "{h}/bench/train.csv"], "both name"),
    "lexicon --out is the notes": (["lexicon", "--notes", "{h}/data/corpus.csv,{h}/data/notes.csv", "--text-col",
                                    "ER_DHX", "--corpus", "{h}/data/corpus.csv", "--out", "{h}/data/notes.csv"],
                                   "is the input file --notes"),
    "lexicon --explain is the corpus": (["lexicon", "--notes", "{h}/data/notes.csv", "--text-col", "ER_DHX",
                                         "--corpus", "{h}/data/corpus.csv", "--out", "{h}/lex.txt", "--explain",
                                         "{h}/data/corpus.csv"], "is the input file --corpus"),
    "export -o is the run's space": (["export", "{h}/search", "-o", "{h}/search/space.yaml"], "is the input file RUN"),
    "export -o is the run": (["export", "{h}/search", "-o", "{h}/search"], "is a directory"),
    "export-onnx --out is the student": (["export-onnx", "--model", "{h}/student", "--out", "{h}/student",
                                          "--overwrite"], "is the input folder --model"),
    "export-onnx --out holds the student": (["export-onnx", "--model", "{h}/student", "--out", "{h}",
                                             "--overwrite"], "holds the input --model"),
    "search --space inside --out": (["search", "--space", "{h}/search/space.yaml", "--out", "{h}/search"],
                                    "is the input file --space"),
    "analyze's storage inside the analysis it replaces": (["analyze", "{h}/search", "--optuna-storage",
                                                           "sqlite:///{h}/search/analysis/optuna.db"],
                                                          "holds the input --optuna-storage"),
    "table --results is the table's results.json": (["table", "--out", "{h}/search", "--render-only", "--results",
                                                     "{h}/search/results.json"], "is the input file --out"),
}


@pytest.mark.parametrize("argv, needle", CASES.values(), ids=CASES.keys())
def test_an_output_over_an_input_is_one_line_before_anything_loads(world, capsys, argv, needle):
    before = tree(world)
    code = main([a.format(h=world) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and MARKER not in err, err
    assert err.startswith(f"dsgkd {argv[0]}: error: ") and needle in err, err
    assert tree(world) == before  # nothing written, nothing removed, the user's space untouched

