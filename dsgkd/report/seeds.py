"""Reselect in analysis: the K best trials and their pairs' controls with their seed spread.

RUN/analysis/reselect.md and a section of the summary: per re-run trial its search value (the search's own
seed, the run that got it selected), its value on each fresh seed, mean ± std, and its rank by mean beside its
rank by search value, so a winner that owed its place to one lucky seed shows as a drop in rank. KD-off
controls of the same pairs, re-run on the same seeds, give each candidate a like-for-like difference.
"""
from __future__ import annotations

import pandas as pd

from dsgkd.report.run_model import Run, Trial
from dsgkd.search.trial_records import rank_key


def reselect_table(run: Run) -> pd.DataFrame:
    planned = sorted((t for t in run.trials if t.reselect is not None),
                     key=lambda t: (t.reselect.role != "candidate", t.reselect.search_rank))
    seeds = sorted({s for t in planned for s in t.reselect.seeds})
    candidates = [t for t in planned if t.reselect.role == "candidate" and t.reselect.complete]
    by_mean = {t.trial_id: i for i, t in enumerate(sorted(candidates, key=lambda t: rank_key(
        t.reselect.mean, None, t.reselect.search_rank, run.space.mode)), 1)}
    control = {t.pair: t.reselect.mean for t in planned if t.reselect.role == "control" and t.reselect.complete}
    rows = []
    for t in planned:
        r = t.reselect
        row = {"rank_by_mean": by_mean.get(t.trial_id),
               "rank_by_search": r.search_rank if r.role == "candidate" else None,
               "trial": t.trial_id, "role": r.role, **t.searched(run.space), "search": t.value,
               "search_seed": t.cfg.train.seed if t.cfg else None}
        row |= {f"seed {s}": _cell(r, s) for s in seeds}
        row |= {"mean": r.mean, "std": r.std,
                "mean - control": r.mean - control[t.pair] if r.role == "candidate" and r.complete
                and t.pair in control else None}
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.astype({c: "Int64" for c in ("rank_by_mean", "rank_by_search", "search_seed") if c in df})


def _cell(runs, seed: int):
    if seed in runs.values:
        return runs.values[seed]
    if seed in runs.errors:
        return "failed"
    return "-" if seed in runs.seeds else None


def reselect_summary(run: Run, df: pd.DataFrame) -> str:
    """The summary's section: the table's key columns, and the plan's state when re-runs are missing."""
    planned: list[Trial] = [t for t in run.trials if t.reselect is not None]
    missing = sum(len(t.reselect.missing) for t in planned)
    head = (f"reselect: the {sum(t.reselect.role == 'candidate' for t in planned)} best KD-on trials"
            + (" and their pairs' KD-off controls" if any(t.reselect.role == "control" for t in planned) else "")
            + f" re-run on fresh seeds ({run.metric} at each re-run's best epoch; search = the search's own run)")
    if missing:
        head += f"; {missing} re-run(s) missing: `dsgkd search --out RUN --resume` runs them"
    cols = [c for c in df.columns if c in ("rank_by_mean", "rank_by_search", "trial", "role", "search", "mean",
                                           "std", "mean - control") or c.startswith("seed ")]
    shown = df[cols].astype(object).map(
        lambda v: "-" if v is None or v is pd.NA or v != v else f"{v:.4f}" if isinstance(v, float) else v)
    return head + "\n\n" + shown.to_string(index=False) + "\n"
