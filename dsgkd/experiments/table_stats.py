"""The table's statistics, from the runs on disk: rows, comparisons, Holm, the held-out-term subset, the curve.

The unit is the training seed. A row's figure is the mean over seeds of each run's test AUROC; a comparison is
A − B in that mean, tested by the exact sign-flip test over the seeds, with the seeds × test-notes bootstrap of
`dsgkd.core.stats` as its interval (both arms scored on the same resampled notes). The primary crosses four rows
(`compare_sides`): the teacher minus its wrong-knowledge twin within each of two searched configs, claimed only
where both show it. Seeds are paired (one seed index drawn for both arms) only where the two rows train on the
same notes with the same recipe: then the same seed means the same head initialisation and the same batches in
the same order, and the pairing removes that shared noise (`paper_table.shares_batches`: with the transfer notes
`alongside`, the paper row, which trains on the labelled notes only, pairs with the control too). Elsewhere the
arms' seeds are resampled independently. Holm's step-down runs over the pair's comparisons (the
primary first); the primary comparison is also corrected across the table's pairs.

The n-gram reference is deterministic (no training seed: the same notes give the same fit), so it is one row of
predictions: `auroc_per_seed` holds its single value, `auroc_std` is 0 and `deterministic` says why, and its
interval is the note bootstrap alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from dsgkd.constants import REPORTED
from dsgkd.core.calibration import primary_comparison
from dsgkd.core.metrics import mean_std
from dsgkd.core.stats import holm, seed_note_ci, seed_note_comparison
from dsgkd.experiments.term_probe import PROBE_FILE

PRIMARY = "true_vs_wrong_teacher"
# The pair's Holm family, primary first: name → (A rows, B rows), A − B in mean per-seed test AUROC, a side of
# several rows meaning, per seed, the mean over them. The primary crosses two searched configs with two equally
# fluent teachers, the one that knows and its wrong-knowledge twin (`paper_table.row_configs`): the teacher's
# effect is read within each config, so no fluency and no config's own quality enters it.
COMPARISONS = {PRIMARY: (("searched", "wrong_knowledge_true_teacher"), ("searched_wrong_teacher", "wrong_knowledge")),
               "searched_vs_knowledge_free": (("searched",), ("knowledge_free",)),
               "searched_vs_control": (("searched",), ("control",)), "paper_vs_control": (("paper",), ("control",))}
TRAINED_ROWS = ("control", "knowledge_free", "searched", "paper", "wrong_knowledge", "searched_wrong_teacher",
                "wrong_knowledge_true_teacher")
TEACHER_ROWS = ("teacher", "random_teacher", "wrong_teacher")
ROWS = (*TRAINED_ROWS, *TEACHER_ROWS, "ngram")
REFERENCE_MARGIN = 0.02  # the KD-off control should reach the n-gram reference minus this
# The SD of one seed's searched − knowledge-free test AUROC difference the table is planned for: the 2026-12-04
# table's per-seed SDs of the two rows (0.011 and 0.016, docs/results.md) as independent arms, sqrt(0.011² +
# 0.016²) ≈ 0.019. At that SD the both-configs primary detects 0.02 with 80% power from 12 seeds (`planned_power`).
PLANNED_SD = 0.019
MDD_GOAL = 0.02
PRIMARY_POWER = 0.8
HELD_OUT_COL = "HELD_OUT_TERM"
MIN_SUBSET = 20  # held-out subset: fewer test notes (or one class) and its AUROC is left out


@dataclass
class Runs:
    """One row's test predictions (seeds × notes) and per-seed test metrics."""

    probs: np.ndarray
    per_seed: dict[str, list[float]]
    deterministic: bool = False
    probe: list[float] | None = None  # per seed: the held-out-term probe of the model the run trained or read
    redraws: list[int] | None = None  # per seed: how often `train.restart_floor` redrew the run (None: no record)


def read_runs(dirs: list[Path], deterministic: bool = False) -> tuple[np.ndarray, Runs]:
    """Labels and the row's runs, from each run's predictions.csv and metrics.json."""
    preds = [pd.read_csv(d / "predictions.csv") for d in dirs]
    metrics = [json.loads((d / "metrics.json").read_text(encoding="utf-8")) for d in dirs]
    y = preds[0]["label"].to_numpy()
    if any(not np.array_equal(p["label"].to_numpy(), y) for p in preds):
        raise ValueError(f"runs {dirs} were scored on different test notes")
    per_seed = {m: [r["test"][m]["value"] for r in metrics] for m in REPORTED}
    probes = [d / PROBE_FILE for d in dirs]
    probe = [json.loads(p.read_text(encoding="utf-8"))["held_out"] for p in probes] \
        if all(p.is_file() for p in probes) else None
    redraws = [len(r["draws"]) - 1 for r in metrics] if all("draws" in r for r in metrics) else None
    return y, Runs(np.stack([p["prob"].to_numpy() for p in preds]), per_seed, deterministic, probe, redraws)


def row_stats(y: np.ndarray, runs: Runs, n_boot: int) -> dict:
    mean, std = mean_std(runs.per_seed["auroc"])
    ci = seed_note_ci(y, runs.probs, "auroc", n_boot=n_boot, seed=0)
    out = {"auroc_mean": mean, "auroc_std": std, "auroc_per_seed": runs.per_seed["auroc"],
           "auroc_ci": [ci["ci_low"], ci["ci_high"]],
           **{m: dict(zip(("mean", "std"), mean_std(v))) for m, v in runs.per_seed.items() if m != "auroc"}}
    if runs.deterministic:
        out["deterministic"] = True
    if runs.redraws is not None:
        out["redraws_per_seed"] = runs.redraws
    if runs.probe is not None:
        out["held_out_probe_per_seed"] = runs.probe
        out["held_out_probe_mean"] = float(np.mean(runs.probe))
    return out


def per_seed_auroc(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.array([roc_auc_score(y, p) for p in probs])


def compare(y: np.ndarray, a: Runs, b: Runs, *, paired: bool, n_boot: int) -> dict:
    """A − B in mean per-seed test AUROC. The p is the exact sign-flip test on the per-seed differences (seed i of
    each arm; valid for arms that share no batches too, since under the null each difference is still symmetric
    about 0), the test whose size held in the A/A calibration (benchmarks/aa_calibration.py), with the minimum
    difference it detects at 80% power for the declared SD; the seeds × notes bootstrap, which rejected a true
    null 13.5% of the time at a nominal 5% with 5 seeds, is kept as a descriptive interval only. Against a
    deterministic row (the n-gram reference) there are no seeds to flip: the bootstrap's p stays, marked."""
    c = seed_note_comparison(y, a.probs, b.probs, "auroc", n_boot=n_boot, seed=0, pair_seeds=paired)
    out = {"diff": c["diff"], "ci": [c["ci_low"], c["ci_high"]], "paired_seeds": paired}
    if a.deterministic or b.deterministic or len(a.probs) != len(b.probs):
        out.update(test="seeds_x_notes_bootstrap", p=c["p"])
    else:
        s = primary_comparison(per_seed_auroc(y, a.probs), per_seed_auroc(y, b.probs), sd_planned=PLANNED_SD)
        out.update(test="sign_flip", p=s["p"], min_p=s["min_p"], can_reject=s["can_reject"], mdd_80=s["mdd_80"],
                   t_ci=[s["ci_low"], s["ci_high"]])
    if a.probe is not None and b.probe is not None and len(a.probe) == len(b.probe):
        out["probe_higher_share"] = float(np.mean(np.array(a.probe) > np.array(b.probe)))  # seed by seed
    return out


def compare_sides(y: np.ndarray, runs: dict[str, Runs], name: str, *, paired: bool, n_boot: int) -> dict:
    """Comparison `name` of COMPARISONS on these runs. One row a side is `compare`. Several (the crossed primary)
    are seed-paired by construction (same notes, student and recipe): A row i − B row i per seed is the teacher's
    effect within config i (`by_config`); a direction is claimed only where every config shows it, each by the
    exact sign-flip test over seeds, so p is the largest of theirs (1 where they disagree in sign:
    `dsgkd.core.search_luck.crossed_claim`: 1.5% false claims at a nominal 5% under the searches' luck in
    `benchmarks/search_luck.py` at config SD 0.02 and interaction SD 0.005, where testing the mean made 16.9%).
    `diff` is their mean, with the paired t interval over seeds (a mean of AUROCs has no single score to bootstrap)."""
    from dsgkd.core.search_luck import crossed_claim

    a_rows, b_rows = COMPARISONS[name]
    if len(a_rows) == 1 == len(b_rows):
        return compare(y, runs[a_rows[0]], runs[b_rows[0]], paired=paired, n_boot=n_boot)
    if not paired or len(a_rows) != 2 or len(b_rows) != 2:
        raise ValueError(f"{name}: a crossed comparison needs two rows a side that share batches, seed by seed")
    auroc = {row: per_seed_auroc(y, runs[row].probs) for row in (*a_rows, *b_rows)}
    within = [auroc[ra] - auroc[rb] for ra, rb in zip(a_rows, b_rows)]
    claim = crossed_claim(*within)
    a, b = (np.mean([auroc[row] for row in rows], axis=0) for rows in (a_rows, b_rows))
    s = primary_comparison(a, b, sd_planned=PLANNED_SD)
    out = {"diff": s["diff"], "ci": [s["ci_low"], s["ci_high"]], "ci_kind": "paired t over seeds",
           "paired_seeds": True, "test": "sign_flip_within_every_config", "p": claim["p"],
           "p_within": claim["p_within"], "min_p": s["min_p"], "can_reject": s["can_reject"],
           "mdd_80": planned_power(len(a))["mdd_80"], "t_ci": [s["ci_low"], s["ci_high"]], "a_mean": float(a.mean()),
           "b_mean": float(b.mean()), "sides": [list(a_rows), list(b_rows)],
           "by_config": {ra: float(d.mean()) for ra, d in zip(a_rows, within)}}
    probes = [[runs[row].probe for row in rows] for rows in (a_rows, b_rows)]
    if all(p is not None for side in probes for p in side):
        pa, pb = (np.mean(side, axis=0) for side in probes)
        out["probe_higher_share"] = float(np.mean(pa > pb))
    return out


def subset(runs: Runs, mask: np.ndarray) -> Runs:
    return Runs(runs.probs[:, mask], {}, runs.deterministic)


def subset_ci(y: np.ndarray, runs: Runs, n_boot: int) -> dict:
    ci = seed_note_ci(y, runs.probs, "auroc", n_boot=n_boot, seed=0)
    return {"auroc_mean": ci["mean"], "auroc_ci": [ci["ci_low"], ci["ci_high"]]}


def held_out_note(mask: np.ndarray | None, y: np.ndarray) -> str | None:
    """Why the held-out-term subset is left out, or None when it is reported."""
    if mask is None:
        return f"the test file has no {HELD_OUT_COL} column: no held-out-term subset to report"
    picked = y[mask]
    if picked.size < MIN_SUBSET or len(np.unique(picked)) < 2:
        return (f"only {picked.size} test notes contain a held-out term ({int(picked.sum())} positive): "
                "too few for an AUROC")
    return None


def summarise_pair(y: np.ndarray, runs: dict[str, Runs], paired: dict[str, bool], *,
                   held_out: np.ndarray | None, n_boot: int) -> dict:
    """rows, comparisons (with Holm over the pair's family), the control against the n-gram reference, and the
    held-out-term subset: every row's AUROC on it and the primary comparison (uncorrected: one extra look)."""
    rows = {row: row_stats(y, runs[row], n_boot) for row in ROWS}
    comparisons = {name: compare_sides(y, runs, name, paired=paired[name], n_boot=n_boot) for name in COMPARISONS}
    adjusted = holm({name: c["p"] for name, c in comparisons.items()})
    for name, c in comparisons.items():
        c["p_holm"] = adjusted[name]
    reference = compare(y, runs["control"], runs["ngram"], paired=False, n_boot=n_boot)
    out = {"rows": rows, "comparisons": comparisons, "n_test": int(len(y)),
           "control_vs_ngram": {**reference, "margin": REFERENCE_MARGIN,
                                "reached": bool(reference["diff"] >= -REFERENCE_MARGIN)}}
    out["held_out"] = held_out_block(y, runs, paired[PRIMARY], held_out, n_boot, ROWS)
    return out


def held_out_block(y, runs: dict[str, Runs], paired: bool, mask, n_boot: int, rows) -> dict:
    note = held_out_note(mask, y)
    if note is not None:
        return {"note": note}
    y_sub = y[mask]
    sub = {row: subset(runs[row], mask) for row in rows}
    return {"n_notes": int(mask.sum()), "n_positive": int(y_sub.sum()),
            "rows": {row: subset_ci(y_sub, sub[row], n_boot) for row in rows},
            "comparisons": {PRIMARY: compare_sides(y_sub, sub, PRIMARY, paired=paired, n_boot=n_boot)}}


def holm_across_pairs(pairs: dict[str, dict]) -> None:
    """The primary comparison's p Holm-corrected over every pair in the table, in place (`p_holm_pairs`)."""
    adjusted = holm({key: r["comparisons"][PRIMARY]["p"] for key, r in pairs.items()})
    for key, r in pairs.items():
        r["comparisons"][PRIMARY]["p_holm_pairs"] = adjusted[key]


def primary_holds(r: dict, primary: str = PRIMARY) -> bool:
    """The primary comparison's A above its B with p < 0.05 after both corrections."""
    c = r["comparisons"][primary]
    return bool(c["diff"] > 0 and max(c["p_holm"], c.get("p_holm_pairs", c["p_holm"])) < 0.05)


def curve_point(y: np.ndarray, runs: dict[str, Runs], *, paired: bool, held_out: np.ndarray | None,
                n_boot: int) -> dict:
    """The primary comparison at one training size (a descriptive curve: p uncorrected)."""
    return {"rows": {row: row_stats(y, runs[row], n_boot) for row in primary_rows()},
            PRIMARY: compare_sides(y, runs, PRIMARY, paired=paired, n_boot=n_boot),
            "held_out": held_out_block(y, runs, paired, held_out, n_boot, primary_rows())}


def primary_rows() -> tuple[str, ...]:
    """The rows the primary comparison reads, A side first."""
    return tuple(row for side in COMPARISONS[PRIMARY] for row in side)


def planned_power(n_seeds: int, sd: float = PLANNED_SD) -> dict:
    """What a table with `n_seeds` seeds can detect, declared before it runs: the primary comparison's minimum
    difference at 80% power (infinite where the sign-flip test cannot reach p < 0.05), and the seeds it needs
    to reach MDD_GOAL. The primary claims only what both configs show, so each config's own test needs power
    √0.8 ≈ 0.894 for the two to reach 0.8 together (their run noise is independent), at the SD of one config's
    per-seed difference."""
    from dsgkd.core.calibration import min_detectable_difference, seeds_for

    each = PRIMARY_POWER ** 0.5
    mdd = (min_detectable_difference(sd, n_seeds, power=each, test="sign_flip") if n_seeds > 1 else float("inf"))
    return {"planned_sd_paired": sd, "seeds": n_seeds, "mdd_80": mdd, "mdd_goal": MDD_GOAL,
            "power_each_config": round(each, 3),
            "seeds_for_goal": seeds_for(MDD_GOAL, sd, power=each, test="sign_flip"),
            "meets_goal": bool(mdd <= MDD_GOAL)}
