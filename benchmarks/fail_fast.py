"""How fast `dsgkd train` refuses what it can judge from configs alone, in a fresh process each time, with
empty stand-in and Hugging Face caches: a mistyped --teacher (the hub refusing connections, a hub that never
answers, HF_HUB_OFFLINE=1) and a bad --layer-map or --max-length (which must fail without building the
stand-ins). Prints JSON: per case the median wall seconds of --repeat runs, exit codes, stderr line counts,
and whether a stand-in directory was created.

    python benchmarks/fail_fast.py [--repeat 3] [--code DIR]   # DIR: another checkout to time (e.g. an older one)
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsgkd.data.synthetic import generate_notes, write_table

REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused at once
CASES = {
    "teacher_refused": ({"HTTPS_PROXY": REFUSED, "HTTP_PROXY": REFUSED}, ["--teacher", "no-such-model-xyz"]),
    "teacher_silent": ({"HTTPS_PROXY": "SILENT", "HTTP_PROXY": "SILENT"}, ["--teacher", "no-such-model-xyz"]),
    "teacher_offline": ({"HF_HUB_OFFLINE": "1"}, ["--teacher", "no-such-model-xyz"]),
    "layer_map": ({"HF_HUB_OFFLINE": "1"}, ["--teacher", "biobert-tiny", "--layer-map", "0:0,9:1"]),
    "max_length": ({"HF_HUB_OFFLINE": "1"}, ["--teacher", "biobert-tiny", "--max-length", "100000"]),
}


def one_run(code: Path, notes: Path, env_extra: dict, args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and not k.lower().endswith("_proxy")}
        env.update(env_extra, PYTHONPATH=str(code), DSGKD_CACHE=f"{tmp}/cache", HF_HOME=f"{tmp}/hf")
        cmd = [sys.executable, "-m", "dsgkd.cli", "train", "--data", str(notes), "--text-col", "ER_DHX",
               "--label-col", "LABEL", "--student", "kobert-tiny", "--out", f"{tmp}/run", *args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, check=False)
        seconds = time.perf_counter() - t0
        return {"seconds": seconds, "rc": proc.returncode, "stderr_lines": len(proc.stderr.strip().splitlines()),
                "built": Path(f"{tmp}/cache/models").exists()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--code", default=str(Path(__file__).resolve().parents[1]), help="the checkout to time")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, socket.create_server(("127.0.0.1", 0), backlog=64) as silent:
        notes = Path(tmp) / "notes.csv"
        write_table(generate_notes(240, seed=7), notes)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"  # accepts, never answers
        out = {}
        for name, (env_extra, args) in CASES.items():
            env_extra = {k: silent_url if v == "SILENT" else v for k, v in env_extra.items()}
            runs = [one_run(Path(a.code), notes, env_extra, args) for _ in range(a.repeat)]
            out[name] = {"median_s": round(statistics.median(r["seconds"] for r in runs), 2),
                         "rc": sorted({r["rc"] for r in runs}), "stderr_lines": max(r["stderr_lines"] for r in runs),
                         "built_stand_ins": any(r["built"] for r in runs)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
