"""The GPU benchmark is kept runnable without a GPU: the same script at toy size on CPU."""
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_step.py"


def test_gpu_step_runs_at_toy_size_on_cpu():
    out = subprocess.run([sys.executable, str(SCRIPT), "--shape", "small", "--device", "cpu", "--steps", "1",
                          "--warmup", "1", "--batch", "2", "--tokens", "32", "--terms", "4"],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["samples_per_s"] > 0 and result["loss_parts"]["hidden"] > 0 and result["loss_parts"]["attention"] > 0
