"""The Pareto front of a two-objective search (`second_objective` in its space), for `dsgkd analyze`.

A finished trial is on the front when no other finished trial is at least as good on both objectives and
better on one, both scored at the trial's best epoch by the primary metric (the weights it keeps, the values
its Optuna trial holds). Optuna's `Study.best_trials` of the two-objective analysis study decides it.
`dsgkd export` still picks by the primary metric alone: the front shows what that pick gives up on the
second objective, and which trials trade some of the first for it.
"""
from __future__ import annotations

import pandas as pd

from dsgkd.report.run_model import Run


def pareto_front(run: Run, study) -> pd.DataFrame:
    """The front of `study` (two objectives, built by `analysis.results_study`) as rows of the run's trials,
    best first by the primary metric."""
    space, (first, second) = run.space, (run.metric, run.space.second_objective)
    by_id = {t.trial_id: t for t in run.trials}
    rows = []
    for ft in study.best_trials:
        t = by_id[ft.user_attrs["trial_id"]]
        rows.append({"trial": t.trial_id, "optuna_trial": t.optuna_number, **t.searched(space),
                     "kd": "on" if t.kd_on else "off", first: t.value, second: t.second, "best_epoch": t.epoch})
    columns = ["trial", "optuna_trial", "pair", "layer_map", *space.params, "kd", first, second, "best_epoch"]
    df = pd.DataFrame(rows, columns=columns)
    df = df.sort_values([first, second], ascending=[space.mode == "min", _second_mode(run) == "min"])
    return df.reset_index(drop=True).astype({"optuna_trial": "Int64", "best_epoch": "Int64"})


def pareto_heading(run: Run, front: pd.DataFrame, n_finished: int) -> str:
    """pareto.md above its table: what the front is, and that export does not pick from it."""
    first, second = run.metric, run.space.second_objective
    return (f"# Pareto front: {first} ({run.space.mode}) and {second} ({_second_mode(run)})\n\n"
            f"Both at each trial's best epoch by {first}, the weights it keeps. {len(front)} of {n_finished} finished "
            f"trials are on the front: no other finished trial is at least as good on both and better on one. "
            f"`dsgkd export` picks by {first} alone, not from this front"
            + (f"; ASHA cut trials on {first} alone.\n\n" if run.space.asha.enabled else ".\n\n"))


def pareto_lines(run: Run, front: pd.DataFrame) -> list[str]:
    """The summary's lines on the front."""
    first, second = run.metric, run.space.second_objective
    head = (f"Pareto front ({first} {run.space.mode}, {second} {_second_mode(run)}; export picks by {first}): "
            f"{len(front)} trial(s)")
    return [head] + [f"  {r['trial']} {r['pair']}: {first} {r[first]:.4f}, {second} {r[second]:.4f}"
                     for _, r in front.iterrows()]


def _second_mode(run: Run) -> str:
    return run.space.objectives[1][2]
