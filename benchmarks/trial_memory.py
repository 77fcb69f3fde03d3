"""A real Ray search's memory as its KD pool grows: the trial process's private memory, and each set-up task's
peak apart from it.

For each pool size (labelled training notes + unlabeled transfer notes) one `dsgkd search` runs one trial
(kmbert-tiny -> xlmr-tiny, hidden-state KD from the teacher cache, one epoch) in a subprocess, while this
script reads /proc every 0.2 s for every Ray worker process: its private resident memory (RssAnon; memory-mapped
note stores and teacher caches are file-backed, shared by the trials of a node) and its peak resident memory
(VmHWM), and the file-backed part (RssFile: mapped stores, caches and libraries). The trial is the process running the Tune trainable; the set-up tasks (stand-ins, note stores, teacher
caches) are the others, each in its own process (`dsgkd.search.caches`). Prints JSON.

    python benchmarks/trial_memory.py [--train 1700 --transfer 1000 19000]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TRIAL_TITLES = ("ImplicitFunc", "trial_driver")  # the process title of a function trainable's actor
POLL_S = 0.2


def space(tmp: Path, transfer: int) -> dict:
    return {"base": {"data": {"path": str(tmp / "train.csv"), "transfer_path": str(tmp / f"transfer{transfer}.csv"),
                              "text_col": "ER_DHX", "label_col": "LABEL", "max_transfer": transfer},
                     "distill": {"beta": 0.0, "gamma": 0.0, "layer_map": "uniform"},
                     "train": {"epochs": 1, "batch_size": 16, "max_length": 128, "patience": 1}},
            "pairs": [{"teacher": "kmbert-tiny", "student": "xlmr-tiny"}], "layer_maps": ["uniform"],
            "params": {"distill.alpha": {"type": "float", "low": 0.3, "high": 0.6}},
            "budget": {"num_samples": 1}, "asha": {"enabled": False}, "include_paper_defaults": False,
            "include_control": False}


def _status(pid: int) -> tuple[str, dict[str, float]] | None:
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    if not title.startswith("ray::"):
        return None
    mb = {k: int(status.split(f"{k}:")[1].split()[0]) / 1024 for k in ("RssAnon", "RssFile", "VmHWM")
          if f"{k}:" in status}
    return title.split()[0], mb


def watched_search(space_file: Path, out: Path) -> dict[int, dict]:
    """Run the search, polling every Ray worker's memory; pid -> {title, peak private MB, peak RSS MB}."""
    proc = subprocess.Popen([sys.executable, "-m", "dsgkd.cli", "search", "--space", str(space_file), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[int, dict] = {}
    while proc.poll() is None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            got = _status(int(entry.name))
            if got is None:
                continue
            title, mb = got
            rec = seen.setdefault(int(entry.name), {"title": title, "private_mb": 0.0, "file_mb": 0.0,
                                                    "peak_rss_mb": 0.0})
            rec["title"] = title  # a worker's title names the task or actor it runs now
            rec["private_mb"] = max(rec["private_mb"], mb.get("RssAnon", 0.0))
            rec["file_mb"] = max(rec["file_mb"], mb.get("RssFile", 0.0))
            rec["peak_rss_mb"] = max(rec["peak_rss_mb"], mb.get("VmHWM", 0.0))
        time.sleep(POLL_S)
    if proc.returncode:
        raise SystemExit(f"dsgkd search failed:\n{proc.stderr.read()[-3000:]}")
    return seen


def measure(tmp: Path, train: int, transfer: int) -> dict:
    space_file = tmp / f"space{transfer}.yaml"
    space_file.write_text(yaml.safe_dump(space(tmp, transfer)))
    out = tmp / f"run{transfer}"
    procs = watched_search(space_file, out)
    trials = [p for p in procs.values() if any(t in p["title"] for t in TRIAL_TITLES)]
    if not trials:
        raise SystemExit(f"no trial process seen among {sorted({p['title'] for p in procs.values()})}")
    setup_file = out / "setup_memory.json"
    return {"kd_pool": train + transfer,
            "trial_private_mb": round(max(p["private_mb"] for p in trials), 1),
            "trial_file_backed_mb": round(max(p["file_mb"] for p in trials), 1),
            "trial_peak_rss_mb": round(max(p["peak_rss_mb"] for p in trials), 1),
            "set_up_tasks": _setup_peaks(setup_file),
            "largest_other_ray_process": max(({"title": p["title"], "private_mb": round(p["private_mb"], 1),
                                               "peak_rss_mb": round(p["peak_rss_mb"], 1)}
                                              for p in procs.values() if p not in trials),
                                             key=lambda p: p["peak_rss_mb"], default=None)}


def _setup_peaks(setup_file: Path) -> dict | None:
    """RUN/setup_memory.json without the run's temporary paths (None from a dsgkd that does not write it)."""
    if not setup_file.is_file():
        return None
    return {kind: [{k: v for k, v in task.items() if k != "dir"} for task in tasks]
            for kind, tasks in json.loads(setup_file.read_text()).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=1700)
    ap.add_argument("--transfer", type=int, nargs="+", default=[1000, 19000])
    a = ap.parse_args()
    from dsgkd.data.synthetic import generate_notes, write_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_table(generate_notes(a.train, seed=0), tmp / "train.csv")
        for n in a.transfer:
            write_table(generate_notes(n, seed=1)[["ER_DHX"]], tmp / f"transfer{n}.csv")
            rows.append(measure(tmp, a.train, n))
    print(json.dumps({"benchmark": "trial_memory", "rows": rows,
                      "trial_private_growth_mb": round(rows[-1]["trial_private_mb"] - rows[0]["trial_private_mb"], 1),
                      "trial_peak_rss_growth_mb": round(rows[-1]["trial_peak_rss_mb"] - rows[0]["trial_peak_rss_mb"],
                                                        1),
                      "trial_file_backed_growth_mb": round(rows[-1]["trial_file_backed_mb"]
                                                           - rows[0]["trial_file_backed_mb"], 1),
                      "goal_growth_mb": 150}, indent=1))


if __name__ == "__main__":
    main()
