"""Peak RSS of one trial's process as its KD pool grows: what a Ray Train worker holds besides the models.

For each pool size (labelled training notes + unlabeled transfer notes) the teacher cache is built in one
child process, then a second, fresh child does what a trial worker does: `prepare_run` without teacher
weights, the cached teacher signal, and `--steps` training steps; its peak RSS (ru_maxrss) is reported, and
its private and file-backed resident memory after each stage.
Prints JSON.

    python benchmarks/trial_memory.py [--train 1700 --transfer 1000 19000 --steps 20]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def config(tmp: str, train: int, transfer: int) -> dict:
    return {"data.path": str(Path(tmp) / "train.csv"), "data.transfer_path": str(Path(tmp) / f"transfer{transfer}.csv"),
            "data.text_col": "ER_DHX", "data.label_col": "LABEL", "data.max_transfer": transfer,
            "teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny", "distill.layer_map": "uniform",
            "train.max_length": 128, "train.batch_size": 16}


def child(role: str, tmp: str, train: int, transfer: int, steps: int) -> dict:
    import resource

    import torch
    from common import resident_mb, timed_steps

    from dsgkd.config import RunConfig
    from dsgkd.pipeline.resolve import resolve_run
    from dsgkd.pipeline.teacher_cache import build_cache
    from dsgkd.pipeline.teachers import prepare_run

    torch.set_num_threads(1)
    cfg = RunConfig().with_overrides(config(tmp, train, transfer))
    if role == "build":
        p = prepare_run(resolve_run(cfg))
        return {"cache": str(build_cache(cfg, p.teacher_layers(), Path(tmp) / "cache"))}
    stages = {"imports": resident_mb()}
    p = prepare_run(resolve_run(cfg), teacher_weights=False)
    stages["prepared"] = resident_mb()
    timed_steps(p, cfg, steps=steps, teacher_cache=sys.argv[-1], warmup=0)
    stages["trained"] = resident_mb()
    return {"kd_pool": len(p.train_examples), "rss_mb_after": stages,
            "trial_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=1700)
    ap.add_argument("--transfer", type=int, nargs="+", default=[1000, 19000])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        role, tmp, train, transfer, steps, *_ = a.child
        print(json.dumps(child(role, tmp, int(train), int(transfer), int(steps))))
        return
    from dsgkd.data.synthetic import generate_notes, write_table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_table(generate_notes(a.train, seed=0), Path(tmp) / "train.csv")
        for n in a.transfer:
            write_table(generate_notes(n, seed=1)[["ER_DHX"]], Path(tmp) / f"transfer{n}.csv")
            cache = run("build", tmp, str(a.train), str(n), str(a.steps))["cache"]
            rows.append(run("trial", tmp, str(a.train), str(n), str(a.steps), cache))
    anon = [r["rss_mb_after"]["trained"]["RssAnon"] for r in rows]
    print(json.dumps({"benchmark": "trial_memory", "rows": rows,
                      "peak_rss_growth_mb": round(rows[-1]["trial_peak_rss_mb"] - rows[0]["trial_peak_rss_mb"], 1),
                      "private_growth_mb": round(anon[-1] - anon[0], 1), "goal_growth_mb": 150}))


if __name__ == "__main__":
    main()
