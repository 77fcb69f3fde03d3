"""The demo's last stages take what its export gives: the README's first command must run to its report."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dsgkd.config import RunConfig
from dsgkd.experiments.demo import rerun_best

ROOT = Path(__file__).resolve().parents[2]


def test_rerun_takes_the_exported_config(notes_csv, tmp_path):
    """`export_best` hands the demo a `RunConfig` read back from best.yaml; the re-run resolves it (passing it
    unresolved crashed the demo after its search)."""
    best = tmp_path / "best.yaml"
    RunConfig().with_overrides({"data.path": str(notes_csv), "data.text_col": "ER_DHX", "data.label_col": "LABEL",
                                "teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny", "train.epochs": 1,
                                "train.max_length": 48, "eval.n_bootstrap": 10}).to_yaml(best)
    cfg = RunConfig.model_validate(yaml.safe_load(best.read_text()))
    summary = rerun_best(cfg, tmp_path / "final", [0])
    assert summary["seeds"] == [0] and set(summary["test"]) == {"dsgkd", "control"}
    assert (tmp_path / "final" / "seed_0" / "control" / "metrics.json").is_file()
    assert not (tmp_path / "final" / "teacher_cache").exists()  # the runs' teacher caches are not part of --out


@pytest.mark.slow
def test_demo_runs_to_its_report(tmp_path):
    """`dsgkd demo` at its smallest: every stage, search through report (about 90 s on 2 cores)."""
    proc = subprocess.run([sys.executable, "-m", "dsgkd.cli", "demo", "--out", str(tmp_path / "demo"), "--notes", "100",
                           "--trials", "2", "--epochs", "1", "--seeds", "0"], capture_output=True, text=True,
                          timeout=900, cwd=ROOT, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "n-gram reference" in report and "KD-off" in report
