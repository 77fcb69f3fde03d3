"""What the command loads: help and the Ray-free commands never import Ray (or, for help, torch)."""
import json
import subprocess
import sys

import pytest

HEAVY = ("ray", "optuna", "torch", "transformers", "pandas", "sklearn", "datasets")
PROBE = """
import json, sys
from dsgkd.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def run_cli(argv: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                          timeout=600, check=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["search", "--help"], ["analyze", "--help"],
                                  ["table", "--help"], ["evaluate", "--help"], ["predict", "--help"],
                                  ["lexicon", "--help"]])
def test_help_loads_none_of_the_heavy_libraries(argv):
    assert run_cli(argv) == {"code": 0, "loaded": []}


def test_train_on_stand_ins_and_synth_never_import_ray(notes_csv, tmp_path):
    synth = run_cli(["synth", "--n", "20", "--out", str(tmp_path / "notes.csv")])
    assert synth["code"] == 0 and "ray" not in synth["loaded"]
    train = run_cli(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL",
                     "--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map", "uniform",
                     "--epochs", "1", "--max-length", "64", "--n-bootstrap", "20", "--out", str(tmp_path / "run")])
    assert train["code"] == 0 and "torch" in train["loaded"]
    assert "ray" not in train["loaded"] and "optuna" not in train["loaded"]
