"""`dsgkd analyze RUN`: what a search found, as tables and plots in RUN/analysis/.

Aggregates (pairs.md, importance, history/parallel/slice/box plots) use finished (TERMINATED) trials only;
the leaderboard and the learning curves also show running and errored trials with what they reported.
Every value is a trial's best epoch (see `dsgkd.report.run_model`). With `budget.reselect`, reselect.md shows the
re-run trials with their seed spread (`dsgkd.report.seeds`); checkpoints.md says which trials still hold a
checkpoint and what each keeps on disk (`dsgkd.report.disk`).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from dsgkd.constants import IMPORTANCE_EVALUATORS
from dsgkd.report.disk import disk_note, disk_table
from dsgkd.report.analysis_plots import write_plots
from dsgkd.report.pareto import pareto_front, pareto_heading, pareto_lines
from dsgkd.report.run_model import FINISHED, Run, load_run
from dsgkd.report.seeds import reselect_summary, reselect_table
from dsgkd.search.dists import CategoricalDist, FloatDist, IntDist
from dsgkd.search.run_lock import REPORT_LOCK_FILE, run_lock
from dsgkd.storage import staged_dir


# ------------------------------------------------------------------------------------------- tables
def leaderboard(run: Run) -> pd.DataFrame:
    rows, second = [], run.space.second_objective
    ranked = run.ranked()
    for rank, t in enumerate(ranked, 1):
        rows.append({"rank": rank if t.value is not None else None, "trial": t.trial_id,
                     "optuna_trial": t.optuna_number, **t.searched(run.space), "kd": "on" if t.kd_on else "off",
                     run.metric: t.value, **({second: t.second} if second else {}), "best_epoch": t.epoch,
                     "epochs": t.epochs, "max_epochs": t.max_epochs,
                     "asha_stopped": t.stopped_by == "asha", "stopped_by": t.stopped_by, "status": t.status,
                     "error": t.error or ""})
    df = pd.DataFrame(rows)
    return df.astype({c: "Int64" for c in ("rank", "optuna_trial", "best_epoch") if c in df})


def pairs_markdown(run: Run) -> str:
    m = run.metric
    lines = [f"# Per pair: {m} ({run.space.mode}) at each trial's best epoch", "",
             "DSG-KD = finished trials with a KD weight > 0; control = the KD-off trial (alpha = beta = gamma = 0, "
             "same head, schedule and learning rates).", "",
             "| pair | trials | finished | errors | best DSG-KD (trial, epoch) | median DSG-KD | KD-off control "
             "(trial) | best − control |", "|---|---|---|---|---|---|---|---|"]
    any_control = False
    for pair in [p.key for p in run.space.pairs]:
        mine = [t for t in run.trials if t.pair == pair]
        kd = run.ranked([t for t in mine if t.finished and t.kd_on])
        ctl = run.ranked([t for t in mine if t.finished and not t.kd_on])
        any_control |= bool(ctl)
        best = f"{kd[0].value:.4f} ({kd[0].trial_id}, {kd[0].epoch})" if kd else "—"
        median = f"{pd.Series([t.value for t in kd]).median():.4f}" if kd else "—"
        control = f"{ctl[0].value:.4f} ({ctl[0].trial_id})" if ctl else "—"
        diff = f"{kd[0].value - ctl[0].value:+.4f}" if kd and ctl else "—"
        lines.append(f"| {pair} | {len(mine)} | {sum(t.status == FINISHED for t in mine)} | "
                     f"{sum(t.status == 'ERROR' for t in mine)} | {best} | {median} | {control} | {diff} |")
    if not any_control:
        lines += ["", "No finished KD-off control" + ("" if run.space.include_control else
                                                         " (the space has include_control: false)") + "."]
    return "\n".join(lines) + "\n"


def markdown_table(df: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")
    rows = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------- importance
def results_study(run: Run, *, both_objectives: bool = False):
    """An in-memory Optuna study of the finished trials valued at their best epochs, with layer_map/<pair>
    folded into one `layer_map` parameter (fANOVA and MDI skip parameters absent from some trials).
    Settings with a single possible value are left out: nothing to attribute to them.

    `both_objectives`: a two-objective study (the metric, then the space's second_objective at the same epoch)
    for the Pareto front. Importance and the per-parameter plots keep the one-objective study: PED-ANOVA takes
    a multi-objective target as minimised, and the history's best-so-far line needs a single direction."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = run.space
    dists = {"pair": CategoricalDistribution([p.key for p in space.pairs]),
             "layer_map": CategoricalDistribution(space.layer_maps)}
    for key, d in space.params.items():
        if isinstance(d, FloatDist):
            dists[key] = FloatDistribution(d.low, d.high, log=d.log, step=d.step)
        elif isinstance(d, IntDist):
            dists[key] = IntDistribution(d.low, d.high, log=d.log, step=d.step)
        elif isinstance(d, CategoricalDist):
            dists[key] = CategoricalDistribution(d.choices)
    dists = {k: d for k, d in dists.items() if not d.single()}
    modes = [mode for _, _, mode in space.objectives][:2 if both_objectives else 1]
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for m in modes],
                                study_name=run.path.name)
    for t in sorted((t for t in run.trials if t.finished), key=lambda t: t.order):
        values = [t.value, t.second][:len(modes)]
        if not all(v is not None and math.isfinite(v) for v in values):
            continue
        params = {k: v for k, v in t.searched(space).items() if k in dists and v is not None}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, values=values,
            user_attrs={"trial_id": t.trial_id, "epoch": t.epoch}))
    return study


def importance(study, evaluator: str = "fanova") -> tuple[pd.DataFrame, str | None]:
    """Normalised importances, or an empty table and the reason they cannot be estimated. fANOVA by default as
    the issue asks (Optuna 5's own default is PED-ANOVA: --evaluator ped-anova)."""
    import optuna

    empty = pd.DataFrame(columns=["param", "importance", "evaluator", "n_trials"])
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    n = len(trials)
    if n < 2:
        return empty, f"importance: {n} finished trial(s), at least 2 needed"
    if not any(t.params for t in trials):
        return empty, "importance: the space searches no setting with more than one value"
    if len({t.value for t in trials}) == 1:
        return empty, f"importance: all {n} finished trials scored {trials[0].value:.4g}; nothing to attribute"
    cls = getattr(optuna.importance, IMPORTANCE_EVALUATORS[evaluator])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = cls(seed=0) if evaluator != "ped-anova" else cls()
            values = optuna.importance.get_param_importances(study, evaluator=ev)
    except (ValueError, RuntimeError) as e:
        return empty, f"importance ({evaluator}) not estimated: {str(e).splitlines()[0]}"
    df = pd.DataFrame({"param": list(values), "importance": list(values.values()), "evaluator": evaluator,
                       "n_trials": n})
    return df, (f"importance from only {n} finished trials: a rough indication" if n < 10 else None)


# -------------------------------------------------------------------------------------------- analyze
def analyze(run_dir: str | Path, *, storage: str | None = None, evaluator: str = "fanova", top: int = 5,
            plots: bool = True) -> str:
    """Write RUN/analysis/ (replaced as a whole, so a reader never sees half of it) and return the summary."""
    run = load_run(run_dir, storage=storage)
    board = leaderboard(run)
    study = results_study(run)
    two = results_study(run, both_objectives=True) if run.space.second_objective else None
    front = pareto_front(run, two) if two is not None else None
    imp, note = importance(study, evaluator)
    notes = run.notes + ([note] if note else [])
    with run_lock(run.path, "analyze", REPORT_LOCK_FILE), staged_dir(run.path / "analysis") as out:
        board.to_csv(out / "leaderboard.csv", index=False)
        (out / "leaderboard.md").write_text(f"# Leaderboard: {run.metric} ({run.space.mode}) at each trial's best "
                                            f"epoch\n\n" + markdown_table(board), encoding="utf-8")
        (out / "pairs.md").write_text(pairs_markdown(run), encoding="utf-8")
        imp.to_csv(out / "importance.csv", index=False)
        if front is not None:
            front.to_csv(out / "pareto.csv", index=False)
            (out / "pareto.md").write_text(pareto_heading(run, front, len(two.trials)) + markdown_table(front),
                                           encoding="utf-8")
        if plots:
            notes += write_plots(run, study, imp, out / "plots", top=top, pareto=two)
        text = (summary(run, board, imp, notes, top, extra=pareto_lines(run, front) if front is not None else [])
                + _write_seeds_and_disk(run, out))
        (out / "summary.md").write_text(text, encoding="utf-8")
    return text + f"\nwrote {run.path / 'analysis'}\n"


def _write_seeds_and_disk(run: Run, out: Path) -> str:
    """reselect.md (when the search re-ran its best trials on fresh seeds) and checkpoints.md; their summary text."""
    text = ""
    if run.reselect:
        seeds = reselect_table(run)
        (out / "reselect.md").write_text(f"# Reselect: {run.metric} ({run.space.mode}) of the best trials on fresh "
                                         f"seeds\n\n" + markdown_table(seeds), encoding="utf-8")
        text += "\n" + reselect_summary(run, seeds)
    disk = disk_table(run)
    (out / "checkpoints.md").write_text("# What each trial keeps on disk\n\n" + disk_note(run, disk) + "\n\n"
                                        + markdown_table(disk), encoding="utf-8")
    return text + "\n" + disk_note(run, disk) + "\n"


def summary(run: Run, board: pd.DataFrame, imp: pd.DataFrame, notes: list[str], top: int,
            extra: list[str] = ()) -> str:
    counts = pd.Series([t.status for t in run.trials]).value_counts().to_dict()
    head = (f"{run.path.name}: {len(run.trials)} trials (" + ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
            + f"); ranked by {run.metric} ({run.space.mode}) at each trial's best epoch")
    cols = [c for c in ("rank", "trial", "pair", "layer_map", *run.space.params, "kd", run.metric,
                        run.space.second_objective, "best_epoch", "epochs", "stopped_by", "error") if c in board]
    shown = board[cols].head(top).astype(object).rename(columns=lambda c: c.removeprefix("distill."))
    shown = shown.map(lambda v: "-" if v is None or v is pd.NA or v != v else f"{v:.4g}" if isinstance(v, float) else v)
    lines = [head, "", shown.to_string(index=False), ""]
    if len(imp):
        lines.append(f"importance ({imp['evaluator'].iloc[0]}): " +
                     ", ".join(f"{p} {v:.2f}" for p, v in zip(imp["param"], imp["importance"])))
    return "\n".join(lines + list(extra) + [f"note: {n}" for n in notes]) + "\n"


