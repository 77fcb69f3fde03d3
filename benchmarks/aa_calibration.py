"""A/A calibration of the primary comparison (issue 21, item 6): prints ONE JSON object.

    PYTHONPATH=. python benchmarks/aa_calibration.py

With the defaults that took 462 s of wall time on the shared 2-core dev machine at a load average of 6-7 (so
about a third of a core); most of it is the bootstrap cells (a full bootstrap per table): `--n-sims 100` cuts
it most.

For each per-(seed, note) noise level and each number of seeds it simulates tables of two arms with no true
difference (`dsgkd.core.calibration.simulate_aa`: shared note difficulty, per-seed AUROC effects of SD
--seed-sd, 1,000 test notes) and reports the false-positive rate at a nominal 5%, with its exact binomial 95%
interval, of
- the table's current primary test, the seeds × notes bootstrap (`seed_note_comparison`, pair_seeds=True,
  --n-boot draws) on --n-sims tables (the slow one: each table is a full bootstrap);
- the exact sign-flip test and the paired t-test on the same tables, and again on --n-sims-cheap tables.
Probabilities are rounded to 2 decimals so the bootstrap's per-value counting stays fast (ties score half).
The note-noise levels matter: where seed effects dominate (0.1) the bootstrap is anti-conservative, where the
per-note noise is large it is conservative, because it counts that noise twice (in the seeds and the notes).

Then the minimum detectable difference at 80% power of a paired test on the per-seed differences, for each
--sd-paired (the SD of one seed's A − B), by the noncentral t ("t"), the normal approximation ("z") and for the
sign-flip test (the t value; infinite where 2 / 2^n > 0.05); the seeds needed for an MDD of --mdd-target; the
same read as if the issue's 0.012–0.014 were the standard error at 5 seeds (SD = SE·√5); and the sign-flip
test's simulated power at the t-test's MDD, which says whether the declared power holds for the test used.
"""
import argparse
import json
import math
import sys
import time

from dsgkd.core.calibration import (bootstrap_p, min_detectable_difference, seeds_for, sign_flip_p, sign_flip_power,
                                    simulate_aa, t_test_p)


def _fpr(r: dict) -> dict:
    return {"fpr": r["fpr"], "ci95": [round(r["ci_low"], 4), round(r["ci_high"], 4)], "n_sims": r["n_sims"]}


def aa_block(args, note_noise: float, n_seeds: int) -> dict:
    common = {"n_seeds": n_seeds, "n_notes": args.notes, "seed_sd": args.seed_sd, "note_noise": note_noise,
              "decimals": 2}
    slow = simulate_aa({"bootstrap": bootstrap_p(n_boot=args.n_boot), "sign_flip": sign_flip_p, "t_test": t_test_p},
                       n_sims=args.n_sims, seed=1, **common)
    cheap = simulate_aa({"sign_flip": sign_flip_p, "t_test": t_test_p}, n_sims=args.n_sims_cheap, seed=2, **common)
    return {"per_seed_auroc_sd": round(slow["per_seed_auroc_sd"], 4),
            "paired_diff_sd": round(slow["paired_diff_sd"], 4),
            "bootstrap": _fpr(slow["tests"]["bootstrap"]),
            "sign_flip": _fpr(slow["tests"]["sign_flip"]), "t_test": _fpr(slow["tests"]["t_test"]),
            "sign_flip_many": _fpr(cheap["tests"]["sign_flip"]), "t_test_many": _fpr(cheap["tests"]["t_test"])}


def mdd_block(sd: float, seeds: list[int], target: float) -> dict:
    def r(x):
        return round(x, 4) if math.isfinite(x) else "inf"
    return {"by_seeds": {str(n): {t: r(min_detectable_difference(sd, n, test=t)) for t in ("t", "z", "sign_flip")}
                         for n in seeds},
            f"seeds_for_mdd_{target}": {t: seeds_for(target, sd, test=t) for t in ("t", "z", "sign_flip")}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--seed-sd", type=float, default=0.012, help="per-seed AUROC effect SD (AUROC scale)")
    ap.add_argument("--note-noise", type=float, nargs="+", default=[0.1, 0.5],
                    help="per-(seed, note) logit noise SD: 0.1 seed-dominated, 0.5 mixed")
    ap.add_argument("--n-sims", type=int, default=200, help="tables per cell with the bootstrap")
    ap.add_argument("--n-sims-cheap", type=int, default=2000, help="tables per cell for the sign-flip and t tests")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--sd-paired", type=float, nargs="+", default=[0.012, 0.014],
                    help="SD of the per-seed paired difference for the MDD")
    ap.add_argument("--se5", type=float, nargs="+", default=[0.012, 0.014],
                    help="the issue's figures read as the standard error of the mean difference at 5 seeds")
    ap.add_argument("--mdd-target", type=float, default=0.02)
    ap.add_argument("--power-sims", type=int, default=2000)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = {"command": " ".join(["python", "benchmarks/aa_calibration.py", *(sys.argv[1:] if argv is None else argv)]),
           "settings": {k: v for k, v in vars(args).items()}, "alpha": 0.05,
           "aa_false_positive_rate": {f"note_noise_{nn}": {str(n): aa_block(args, nn, n) for n in args.seeds}
                                      for nn in args.note_noise},
           "mdd_80": {f"sd_paired_{sd}": mdd_block(sd, args.seeds, args.mdd_target) for sd in args.sd_paired},
           "mdd_80_if_issue_se_at_5_seeds": {f"se5_{se}": {"sd_paired": round(se * math.sqrt(5), 4),
                                                           **mdd_block(se * math.sqrt(5), args.seeds, args.mdd_target)}
                                             for se in args.se5}}
    sd = args.sd_paired[0]
    power = {}
    for n in args.seeds:
        mdd = min_detectable_difference(sd, n)
        p = sign_flip_power(mdd, sd, n, n_sims=args.power_sims, seed=3)
        power[str(n)] = {"t_mdd": round(mdd, 4), "sign_flip_power": p["rate"],
                         "ci95": [round(p["ci_low"], 4), round(p["ci_high"], 4)]}
    out[f"sign_flip_power_at_t_mdd_sd_{sd}"] = power
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
