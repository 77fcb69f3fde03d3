"""The Pareto front of a two-objective search, on hand-made trials: it is exactly the brute-force
non-dominated set, both values at each trial's best epoch by the primary metric."""
import math

import numpy as np
import optuna
import pytest

from dsgkd.errors import UserError
from dsgkd.report.analysis import importance, results_study
from dsgkd.report.pareto import pareto_front, pareto_heading, pareto_lines
from handmade_runs import make_run, make_space, trial


def non_dominated(points: dict[str, tuple[float, float]], modes: tuple[str, str]) -> set[str]:
    sign = [1 if m == "max" else -1 for m in modes]

    def dominates(p, q):
        return (all(s * a >= s * b for s, a, b in zip(sign, p, q))
                and any(s * a > s * b for s, a, b in zip(sign, p, q)))

    return {i for i, p in points.items() if not any(dominates(q, p) for j, q in points.items() if j != i)}


@pytest.mark.parametrize("metric, second, modes", [("val_auroc", "val_brier", ("max", "min")),
                                                    ("val_loss", "val_auprc", ("min", "max")),
                                                    ("val_f1", "val_auprc", ("max", "max"))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_front_is_the_brute_force_non_dominated_set(tmp_path, metric, second, modes, seed):
    rng = np.random.default_rng(seed)
    points = [tuple(float(v) for v in np.round(rng.uniform(0.1, 0.9, 2), 2)) for _ in range(40)]  # ties happen
    points += [points[0], (points[1][0], points[1][1] + (0.05 if modes[1] == "min" else -0.05))]  # a twin, a loser
    space = make_space(metric, second)
    extra_rng = np.random.default_rng(99)
    best = (1.0, 0.0) if modes == ("max", "min") else (0.0, 1.0) if modes == ("min", "max") else (1.0, 1.0)
    errored = trial(space, 90, *best, extra_rng, status="ERROR")  # dominates all, but never finished
    nan_second = trial(space, 91, *best, extra_rng)
    nan_second.second = math.nan
    run = make_run(tmp_path, points, metric=metric, second=second, seed=seed, extra=[errored, nan_second])
    study = results_study(run, both_objectives=True)
    assert [d.name.lower()[:3] for d in study.directions] == list(modes)
    assert len(study.trials) == len(points)  # the errored trial and the one without a second value left out

    front = pareto_front(run, study)
    expected = non_dominated({f"t{i:02d}": p for i, p in enumerate(points)}, modes)
    assert set(front["trial"]) == expected and len(front) == len(expected)
    assert f"t{len(points) - 1:02d}" not in expected  # the data holds a tie on the primary, lost on the second
    ascending = modes[0] == "min"
    assert list(front[metric]) == sorted(front[metric], reverse=not ascending)
    for _, row in front.iterrows():
        assert (row[metric], row[second]) == points[int(row["trial"][1:])]


def test_values_come_from_the_primary_best_epoch(tmp_path):
    run = make_run(tmp_path, [(0.8, 0.2), (0.7, 0.1)])
    study = results_study(run, both_objectives=True)
    for ft, t in zip(study.trials, run.trials):
        best = t.progress.loc[t.progress[run.metric].idxmax()]
        assert ft.values == [best[run.metric], best["val_brier"]]  # not the epoch where brier is lowest
        assert ft.values[1] != t.progress["val_brier"].min()


def test_importance_and_single_objective_study_unchanged(tmp_path):
    run = make_run(tmp_path, [(0.5 + 0.03 * i, 0.3 - 0.01 * i) for i in range(8)])
    study = results_study(run)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE and len(study.directions) == 1
    assert [t.value for t in study.trials] == [t.value for t in run.trials]
    imp, _ = importance(study, "ped-anova")
    assert len(imp) and imp["importance"].sum() == pytest.approx(1.0)


def test_markdown_and_summary_say_export_picks_by_the_primary(tmp_path):
    run = make_run(tmp_path, [(0.8, 0.25), (0.7, 0.1), (0.6, 0.3)])
    front = pareto_front(run, results_study(run, both_objectives=True))
    assert list(front["trial"]) == ["t00", "t01"]
    head = pareto_heading(run, front, 3)
    assert "2 of 3 finished trials" in head and "`dsgkd export` picks by val_auroc alone" in head
    lines = pareto_lines(run, front)
    assert "export picks by val_auroc" in lines[0] and "t00" in lines[1] and "0.2500" in lines[1]


@pytest.mark.parametrize("second, message", [
    ("val_auroc", "second_objective val_auroc: already the primary metric; choose another"),
    ("brier", "second_objective brier: not a validation metric (one of val_auroc, val_auprc, val_f1, val_brier, "
              "val_loss, val_ece); did you mean val_brier?"),
    ("val_threshold", "second_objective val_threshold: not a validation metric"),
])
def test_bad_second_objective_is_one_line(second, message):
    with pytest.raises(UserError) as e:
        make_space("val_auroc", second)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_objectives_and_directions():
    space = make_space("val_auroc", "val_ece")
    assert space.objectives == [("val_auroc", "best_val_auroc", "max"), ("val_ece", "val_ece_at_best", "min")]
    assert make_space("val_auroc", None).objectives == [("val_auroc", "best_val_auroc", "max")]
