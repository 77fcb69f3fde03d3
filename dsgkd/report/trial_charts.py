"""The matplotlib figures dsgkd draws itself, where Optuna's could not be made readable.

Optuna's slice and parallel-coordinate plots colour trials on a scale that starts at white (trial 0, or the
worst value, vanishes on the light background), quote categorical choices, and give a pair name such as
`kmbert-tiny>xlmr-tiny` no more room than a number, so its tick labels run into the next axis. Here every
trial's colour comes from `TRIALS`, whose lightest tone still stands out on white; a pair name breaks at its
`>`; categorical tick labels lie as flat as they fit (level, tilted, upright) and a setting whose choices
need more room gets a full-width panel; each parallel axis gets the gap its labels need.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure

# where trial colour scales start: Blues and Reds from here on keep a 3:1 contrast with white (WCAG's bar
# for graphics); from 0, the first or worst trial is drawn white
LIGHTEST = 0.62
TRIALS = LinearSegmentedColormap.from_list("trials", matplotlib.colormaps["Blues"](
    [LIGHTEST + (1 - LIGHTEST) * i / 15 for i in range(16)]))
UNSET = -0.12  # height of "not sampled" on a parallel-coordinate axis
# series that must be told apart (learning curves): tab10 without its light orange, olive, pink and cyan
SERIES = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f", "#000000")
FRONT, OTHER = "#d62728", "#1f77b4"


def slice_plot(study, params: list[str], metric: str) -> Figure:
    """`metric` against each searched setting, one panel per setting, points coloured by start order. A setting
    whose choices need more room than a third of the width (three long pair names) gets a row of its own."""
    trials = study.trials
    dists = {name: next(t.distributions[name] for t in trials if name in t.params) for name in params}
    wide = [n for n in params if hasattr(dists[n], "choices") and len(dists[n].choices) * _longest(dists[n]) > 60]
    narrow = [n for n in params if n not in wide]
    cols = min(len(narrow), 3) or 1
    rows = math.ceil(len(narrow) / cols)
    fig = Figure(figsize=(4.2 * cols + 1, 3.2 * (rows + len(wide))), layout="constrained")
    grid = fig.add_gridspec(rows + len(wide), cols)
    cells = [grid[i // cols, i % cols] for i in range(len(narrow))] + [grid[rows + i, :] for i in range(len(wide))]
    axes = []
    for cell in cells:
        axes.append(fig.add_subplot(cell, sharey=axes[0] if axes else None))
    norm = Normalize(0, max(len(trials) - 1, 1))
    for ax, name in zip(axes, narrow + wide):
        have, dist = [t for t in trials if name in t.params], dists[name]
        if hasattr(dist, "choices"):
            choices = list(dist.choices)
            xs = [choices.index(t.params[name]) for t in have]
            ax.set_xticks(range(len(choices)), [_tick_label(c) for c in choices])
            ax.set_xlim(-0.5, len(choices) - 0.5)
        else:
            xs = [t.params[name] for t in have]
            if dist.log:
                ax.set_xscale("log")
        ax.scatter(xs, [t.values[0] for t in have], c=[t.number for t in have], cmap=TRIALS, norm=norm, s=36,
                   edgecolors="black", linewidths=0.4, zorder=3)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(metric)
        else:
            ax.tick_params(labelleft=False)
    fig.colorbar(ScalarMappable(norm, TRIALS), ax=axes, label="trial (start order)", shrink=0.9)
    fig.suptitle(f"{metric} at each finished trial's best epoch, per searched setting", fontsize=10)
    _flattest_fit(fig, [ax for ax, name in zip(axes, narrow + wide) if hasattr(dists[name], "choices")])
    return fig


def parallel_plot(study, params: list[str], metric: str, mode: str) -> Figure:
    """One vertical axis per setting after `metric`, one line per trial coloured by `metric` (darker is
    better). An axis's ticks are written to its left, in a gap as wide as its longest label needs."""
    trials = sorted(study.trials, key=lambda t: t.values[0] if mode == "max" else -t.values[0])  # best on top
    axes = coordinates(trials, params, metric)
    need = [0.065 * max(len(line) for _, text in ticks for line in text.split("\n")) + 0.25 for _, _, ticks in axes]
    xs = [need[0]]  # in inches (8 pt labels: about 0.065 in a character)
    for gap in need[1:]:
        xs.append(xs[-1] + max(1.2, gap))
    fig = Figure(figsize=(xs[-1] + 2.2, 4.8), layout="constrained")
    ax = fig.subplots()
    values = [t.values[0] for t in trials]
    norm = Normalize(min(values), max(values)) if mode == "max" else Normalize(max(values), min(values))
    for i, t in enumerate(trials):
        ax.plot(xs, [heights[i] for _, heights, _ in axes], color=TRIALS(norm(t.values[0])), linewidth=1.6,
                marker="o", markersize=3)
    for x, (_, _, ticks) in zip(xs, axes):
        ax.axvline(x, color="black", linewidth=0.8)
        for y, text in ticks:
            ax.text(x - 0.04, y, text, ha="right", va="center", fontsize=8,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.set_xticks(xs, [name for name, _, _ in axes], rotation=20, ha="right", rotation_mode="anchor")
    ax.set(xlim=(0, xs[-1] + 0.1), ylim=(UNSET - 0.06, 1.06), yticks=[])
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, TRIALS), ax=ax, label=f"{metric} (darker: better)")
    ax.set_title(f"finished trials at their best epochs: {metric} and the settings", fontsize=10)
    return fig


def pareto_plot(study, names: Sequence[str], modes: Sequence[str]) -> Figure:
    """Both objectives of every finished trial; the non-dominated ones in red, joined in order."""
    front = {t.number for t in study.best_trials}
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    rest = [t for t in study.trials if t.number not in front]
    best = sorted((t for t in study.trials if t.number in front), key=lambda t: t.values)
    if rest:
        ax.scatter([t.values[0] for t in rest], [t.values[1] for t in rest], s=36, color=OTHER, edgecolors="black",
                   linewidths=0.4, label=f"dominated ({len(rest)})", zorder=3)
    # the edge of the region the front dominates
    ax.plot([t.values[0] for t in best], [t.values[1] for t in best], color=FRONT, linewidth=1, zorder=2,
            drawstyle="steps-pre" if modes[0] == "max" else "steps-post")
    ax.scatter([t.values[0] for t in best], [t.values[1] for t in best], s=56, color=FRONT, edgecolors="black",
               linewidths=0.4, label=f"Pareto front ({len(best)})", zorder=4)
    better = {"max": "higher is better", "min": "lower is better"}
    ax.set(xlabel=f"{names[0]} ({better[modes[0]]})", ylabel=f"{names[1]} at that epoch ({better[modes[1]]})")
    ax.set_title(f"{names[0]} vs {names[1]} at each finished trial's best epoch by {names[0]}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def coordinates(trials, params: list[str], metric: str) -> list[tuple[str, list[float], list[tuple[float, str]]]]:
    """The axes of a parallel-coordinate plot, `metric` first: (name, each trial's height in [0, 1], ticks as
    (height, label)). A log setting is placed on its log scale; a trial that never sampled a setting (the
    temperature without logit KD) sits at UNSET, below that axis, with its own tick."""
    axes = []
    for name in [metric, *params]:
        raw = [t.values[0] if name == metric else t.params.get(name) for t in trials]
        dist = next((t.distributions[name] for t in trials if name in t.params), None)
        place, ticks = _scale([v for v in raw if v is not None], dist)
        if None in raw:
            ticks.append((UNSET, "not sampled"))
        axes.append((name, [UNSET if v is None else place(v) for v in raw], ticks))
    return axes


def _scale(values: list, dist) -> tuple:
    """(value → height in [0, 1], [(height, tick label)]) for the values an axis shows."""
    if dist is not None and hasattr(dist, "choices"):
        step = 1 / (len(dist.choices) - 1) if len(dist.choices) > 1 else 0
        at = {c: i * step if step else 0.5 for i, c in enumerate(dist.choices)}
        return at.__getitem__, [(h, _tick_label(c)) for c, h in at.items()]
    log = getattr(dist, "log", False)
    seen = [math.log10(v) if log else v for v in values]
    lo, hi = min(seen), max(seen)

    def place(v):
        x = math.log10(v) if log else v
        return (x - lo) / (hi - lo) if hi > lo else 0.5

    shown = [10 ** x if log else x for x in ([lo, (lo + hi) / 2, hi] if hi > lo else [lo])]
    return place, [(place(v), f"{v:.3g}") for v in shown]


def _tick_label(choice) -> str:
    """A categorical choice as a tick label: a pair on two lines, teacher over >student."""
    text = str(choice)
    return text.replace(">", "\n>") if ">" in text and len(text) > 16 else text


def _longest(dist) -> int:
    return max(len(line) for c in dist.choices for line in _tick_label(c).split("\n"))


def _flattest_fit(fig: Figure, axes) -> None:
    """Each categorical axis' tick labels as flat as they fit: level, else tilted, else upright."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    for rotation, ha, mode in ((25, "right", "anchor"), (90, "center", "default")):
        fig.draw_without_rendering()
        axes = [ax for ax in axes if _touching(ax, renderer)]
        for ax in axes:
            for tick in ax.get_xticklabels():
                tick.set(rotation=rotation, ha=ha, rotation_mode=mode)


def _touching(ax, renderer) -> bool:
    boxes = [tick.get_window_extent(renderer) for tick in ax.get_xticklabels() if tick.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
