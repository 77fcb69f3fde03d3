"""The GPU benchmark is kept runnable without a GPU: the same script at toy size on CPU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_step.py"


def test_gpu_step_runs_at_toy_size_on_cpu():
    out = subprocess.run([sys.executable, str(SCRIPT), "--shape", "small", "--device", "cpu", "--steps", "1",
                          "--warmup", "1", "--batch", "2", "--tokens", "32", "--terms", "4"],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["samples_per_s"] > 0 and result["loss_parts"]["hidden"] > 0 and result["loss_parts"]["attention"] > 0


@pytest.mark.slow  # two real searches: 60-110 s, most of it Ray's set-up per search
def test_search_efficiency_quick_mode_prints_one_json_object():
    """Both arms on the demo space at toy size; stdout holds nothing but the JSON (Tune's tables go to stderr)."""
    script = SCRIPT.parent / "search_efficiency.py"
    out = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=600,
                         check=True)
    result = json.loads(out.stdout)
    summary = result["summary"]
    assert set(result["runs"]) == set(result["arms"]) == {"tpe_asha", "random_no_es"}
    for arm, by_seed in result["runs"].items():
        run = by_seed["0"]
        assert len(run["trials"]) == 2 and run["epochs_trained"] == sum(t["epochs"] for t in run["trials"])
        assert run["best_by_trial"] == sorted(run["best_by_trial"]) and run["final_best"] == max(
            t["best"] for t in run["trials"])
        assert [b for _, b in run["best_by_wall_s"]] == sorted(b for _, b in run["best_by_wall_s"])
        assert summary[arm]["final_best"]["mean"] == run["final_best"]
    assert all(t["stopped_by"] != "asha" for t in result["runs"]["random_no_es"]["0"]["trials"])
    assert result["seeded_trials"] == 1 and summary["tpe_asha_minus_random"]["seeds"] == 1
