"""Does the searched DSG-KD config gain from its teacher's knowledge? The config a table's search exported, trained on
the table's own files over ten seeds three ways: as searched (the pretrained teacher), with the teacher's knowledge
removed (the same config, the teacher randomly initialised and fine-tuned by the same recipe: its "twin") and with KD
off (the control). Used where the whole table cannot run in the time at hand: it reuses the table's data (the
reported test split), its fine-tuned teachers (cached by content) and one finished search, and adds no search.

Declared before it ran (2026-12-06, committed with this file):
- primary: searched − twin in mean per-seed test AUROC, exact sign-flip test over the 10 seeds (the test whose size
  held in the A/A calibration), two-sided; it detects 0.019 with 80% power at the planned per-seed SD of 0.019;
- secondary (reported, uncorrected): the same on the test notes with a held-out term; searched − control; each
  row's held-out-term probe, and in how many seeds the searched student's probe is above the twin's.
The twin has the searched config, not a search of its own (the table's knowledge-free row has one): a difference
here is the knowledge in that config's teacher signal, not a comparison of two searches. Prints one JSON object.

    python benchmarks/knowledge_check.py --table runs/tables/positive --pair kmbert-tiny__xlmr-tiny [--seeds 0-9]
"""
import argparse
import json
from pathlib import Path

import numpy as np

from dsgkd.config import RunConfig
from dsgkd.experiments import paper_table as pt
from dsgkd.experiments import table_stats as stats

ROWS = ("searched", "twin", "control")


def row_configs(searched: RunConfig) -> dict[str, RunConfig]:
    return {"searched": searched, "twin": searched.with_overrides({"teacher.random_init": True}),
            "control": searched.model_copy(update={"distill": searched.distill.control()})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, required=True, help="a dsgkd table OUT whose pair search has finished")
    ap.add_argument("--pair", required=True, help="the pair's folder under --table, e.g. kmbert-tiny__xlmr-tiny")
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, help="where the runs go (default: TABLE/PAIR/knowledge_check)")
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in a.seeds.split(",")]
    pair_dir = a.table / a.pair
    out = a.out or pair_dir / "knowledge_check"
    world = json.loads((a.table / "protocol.json").read_text())["world"]
    searched = RunConfig.from_yaml(pair_dir / "search" / "best.yaml").model_copy(update={"provenance": None})
    configs = row_configs(searched)
    jobs = [("student", configs[row].with_overrides({"train.seed": s}), out / row / f"seed_{s}")
            for s in seeds for row in ROWS]  # seed-major: a cut run still has whole seeds to compare
    pt.run_jobs(jobs, a.workers, world)
    runs, y = {}, None
    for row in ROWS:
        y, runs[row] = stats.read_runs([out / row / f"seed_{s}" for s in seeds])
    held = pt.held_out_mask(searched)
    result = {}
    for name, (x, z) in {"searched_vs_twin": ("searched", "twin"), "searched_vs_control": ("searched", "control")}.items():
        c = stats.compare(y, runs[x], runs[z], paired=True, n_boot=1000)
        sub = stats.compare(y[held], stats.subset(runs[x], held), stats.subset(runs[z], held), paired=True, n_boot=1000)
        result[name] = {"test": c, "held_out_term_notes": sub}
    probes = {row: runs[row].probe for row in ROWS}
    print(json.dumps({
        "benchmark": "knowledge_check", "table": str(a.table), "pair": a.pair, "world": world, "seeds": seeds,
        "searched_config": pt.describe(searched),
        "auroc_per_seed": {row: [round(v, 4) for v in runs[row].per_seed["auroc"]] for row in ROWS},
        "auroc_mean": {row: round(float(np.mean(runs[row].per_seed["auroc"])), 4) for row in ROWS},
        "held_out_notes": int(held.sum()), "comparisons": result, "probe_per_seed": probes,
        "searched_probe_above_twin": None if None in (probes["searched"], probes["twin"]) else
        f"{sum(a_ > b_ for a_, b_ in zip(probes['searched'], probes['twin']))}/{len(seeds)}"}, default=float))


if __name__ == "__main__":
    main()
