"""`dsgkd export`: the best trial of a search as a RunConfig YAML."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from dsgkd.paths import check_outputs, run_entries


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="the best trial of a search as a RunConfig YAML for `dsgkd train --config`",
        description="Pick the best finished DSG-KD trial of RUN by its best epoch's validation metric and write its "
                    "full RunConfig with provenance (run, trial id, metric, value, epoch, dsgkd version, data "
                    "fingerprint, seed). With budget.reselect in the space, it picks by the mean over the seeds "
                    "the search re-ran its best trials on, and records them. Re-run it: "
                    "dsgkd train --config FILE --seeds 0,1,2 --out DIR. KD-off controls are skipped unless asked.")
    p.add_argument("run", type=Path, metavar="RUN", help="the --out directory of `dsgkd search`")
    p.add_argument("-o", "--out", type=Path, metavar="FILE", help="output YAML (default: RUN/best.yaml)")
    p.add_argument("--allow-control", action="store_true",
                   help="also consider KD-off control trials (alpha = beta = gamma = 0)")
    p.add_argument("--label-names", type=lambda v: v.split(","), metavar="NEG,POS",
                   help="names of classes 0 and 1 in the re-run student's config.json (data.label_names), e.g. "
                        "non-emergency,emergency")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    check_outputs({"RUN": run_entries(args.run, except_="best.yaml")}, files={"--out": args.out})
    from dsgkd.report.export import export_best

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        path, cfg, best, control = export_best(args.run, args.out, allow_control=args.allow_control,
                                                   label_names=args.label_names)
    for w in caught:
        print(f"warning: {w.message}")
    p = cfg.provenance
    print(f"trial {best.trial_id} ({best.pair}, layer_map {cfg.distill.layer_map}, alpha {cfg.distill.alpha:g}, "
          f"beta {cfg.distill.beta:g}, T {cfg.distill.temperature:g}): {p.metric} {p.value:.4f} at epoch {p.epoch} "
          f"of {best.epochs} ({best.stopped_by}); seed {cfg.train.seed}")
    seeds = "0,1,2"
    if p.reselect is not None:
        r = p.reselect
        print(f"picked by the mean over fresh seeds {','.join(map(str, r.seeds))} (not the search's seed {p.seed}): "
              f"{r.mean:.4f}"
              + (f" ± {r.std:.4f}" if r.std is not None else "") + f" ({', '.join(f'{v:.4f}' for v in r.values)})")
        # seeds the selection did not use: their test metrics owe nothing to the luck that picked the trial
        first = max(r.seeds + [cfg.train.seed]) + 1
        seeds = ",".join(str(first + i) for i in range(3))
    if control is not None:
        score = control.reselect.mean if p.reselect is not None else control.value
        print(f"note: the KD-off control trial {control.trial_id} scored higher ({score:.4f}"
              f"{' mean' if p.reselect is not None else ''}); --allow-control exports it")
    print(f"wrote {path}\nre-run: dsgkd train --config {path} --seeds {seeds} --out DIR")
    return 0
