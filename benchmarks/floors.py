"""The declared floors, tested: a fresh venv with every direct dependency at the lowest version pyproject.toml
allows (`uv pip install --resolution lowest-direct`), and the test suite run in it. Prints JSON: the versions
resolved for the direct dependencies, pytest's summary line, and the seconds each step took.

    python benchmarks/floors.py [--venv /tmp/dsgkd-floors] [-- PYTEST ARGS]

Two tests compare the environment with constraints.txt's pins (the cluster's Ray equals the client's, every
package a node installs is pinned): at the floors they fail by design, and the JSON lists them like any other.
uv comes from PyPI into a venv of its own when it is not on PATH. The suite runs from this checkout (the venv
holds an editable install of it), with the same DSGKD_CACHE as the caller, so stand-ins are not rebuilt.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIRECT = ["torch", "ray", "transformers", "tokenizers", "optuna", "datasets", "pandas", "pyarrow", "pydantic",
          "PyYAML", "scikit-learn", "scipy", "safetensors", "huggingface_hub", "httpx2", "numpy", "sentencepiece",
          "protobuf", "matplotlib", "plotly"]


def uv_binary(work: Path) -> str:
    found = shutil.which("uv")
    if found:
        return found
    venv = work / "uv-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "uv"], check=True)
    return str(venv / "bin" / "uv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default="/tmp/dsgkd-floors")
    ap.add_argument("pytest_args", nargs="*", default=["-q"])
    a = ap.parse_args()
    venv = Path(a.venv)
    seconds = {}
    t0 = time.time()
    uv = uv_binary(venv.parent)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    wheels = ["--find-links", os.environ["PIP_FIND_LINKS"]] if os.environ.get("PIP_FIND_LINKS") else []
    subprocess.run([uv, "pip", "install", "-q", "--resolution", "lowest-direct", *wheels, "-e", f"{ROOT}[dev]"],
                   check=True, env={**os.environ, "VIRTUAL_ENV": str(venv)})
    seconds["install"] = round(time.time() - t0, 1)
    python = str(venv / "bin" / "python")
    versions = json.loads(subprocess.run(
        [python, "-c", "import importlib.metadata as m, json, sys; "
                       "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))", *DIRECT],
        capture_output=True, text=True, check=True).stdout)
    t1 = time.time()
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider", *a.pytest_args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds["tests"] = round(time.time() - t1, 1)
    lines = proc.stdout.strip().splitlines()
    print(json.dumps({"benchmark": "floors", "versions": versions, "pytest_rc": proc.returncode,
                      "summary": lines[-1] if lines else proc.stderr[-500:],
                      "failed": [ln for ln in lines if ln.startswith("FAILED")], "seconds": seconds}, indent=1))


if __name__ == "__main__":
    main()
