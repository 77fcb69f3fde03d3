"""A/A with search luck (issue 21): prints ONE JSON object.

    PYTHONPATH=. python benchmarks/search_luck.py [--n-sims 2000] [--seeds 10]

The false-positive rate at a nominal 5% of the table's primary test (the exact sign-flip test over training
seeds) when no teacher helps and each arm's config is the best of `--candidates` trials scored once on validation
(`dsgkd.core.search_luck`), for three designs: `separate` (searched − an own-search control, the tables reported
before the wrong-knowledge arm), `crossed_mean` (both searched configs with both teachers, the mean within-config
difference tested), `crossed_both` (the same rows, a claim only where both configs show it: the table's
primary, `true_vs_wrong_teacher`) and `separate_per_seed` (a fresh pair of searches for every seed: calibrated
whatever the luck, at the seeds times the search cost; not built in the table), over a grid of config-quality SDs and config × teacher interaction SDs, and
each design's power at --effect. Run noise 0.0134 per row and seed (a
paired per-seed SD of 0.019, the tables' planned SD), validation noise 0.03 per trial (one seed on 400 notes).
For scale, each table search's 8 trials spread with an SD of 0.03-0.12 in validation AUROC (collapsed trials
included), a bound on sd_config plus sd_val.
"""
import argparse
import json
import time

from dsgkd.core.search_luck import DESIGNS, false_positive_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sims", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--sd-config", default="0,0.01,0.02,0.04")
    ap.add_argument("--sd-interaction", default="0,0.0025,0.005,0.01,0.02")
    ap.add_argument("--effect", default="0.02,0.03", help="true teacher effects for the power rows")
    args = ap.parse_args()
    started = time.time()
    grid = []
    for sd_c in (float(x) for x in args.sd_config.split(",")):
        for sd_i in (float(x) for x in args.sd_interaction.split(",")):
            cell = {"sd_config": sd_c, "sd_interaction": sd_i}
            for design in DESIGNS:
                r = false_positive_rate(design, n_sims=args.n_sims, n_seeds=args.seeds, n_candidates=args.candidates,
                                        sd_config=sd_c, sd_interaction=sd_i, seed=1)
                cell[design] = {"fpr": r["rate"], "ci95": [round(r["ci_low"], 4), round(r["ci_high"], 4)],
                                "sd_of_table_mean": round(r["sd_of_table_mean"], 4)}
            grid.append(cell)
    power = [{"effect": e, "sd_config": 0.02, "sd_interaction": 0.005,
              **{design: false_positive_rate(design, n_sims=args.n_sims, n_seeds=args.seeds, sd_config=0.02,
                                             sd_interaction=0.005, effect=e, seed=2)["rate"] for design in DESIGNS}}
             for e in (float(x) for x in args.effect.split(","))]
    print(json.dumps({"n_sims": args.n_sims, "seeds": args.seeds, "candidates": args.candidates, "alpha": 0.05,
                      "false_claims": grid, "power": power, "seconds": round(time.time() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()
