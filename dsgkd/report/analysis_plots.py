"""The figures of `dsgkd analyze`: PNG for reports (matplotlib, Agg), HTML for exploring (plotly, offline).

The slice, parallel-coordinate and Pareto PNGs are dsgkd's own (`dsgkd.report.trial_charts`). The HTML pages
are Optuna's, with their white-starting colour scales cut to tones that stay visible (`_visible`), except the
parallel coordinates: plotly's own, on the PNG's axes.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from dsgkd.report import trial_charts
from dsgkd.report.run_model import FINISHED, Run, Trial


def write_plots(run: Run, study, imp, out: Path, *, top: int = 5, pareto=None) -> list[str]:
    """Each figure as name.png (matplotlib, Agg) and name.html (plotly; plotly.min.js written once beside
    them, so the pages work offline without 3 MB each). `pareto`: the two-objective study, for pareto.png.
    Returns notes on figures that could not be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as ov
    import optuna.visualization.matplotlib as om
    import plotly.graph_objects as go

    out.mkdir(parents=True, exist_ok=True)
    notes, m = [], run.metric

    def save(name: str, draw_png, draw_html) -> None:
        try:
            # rc_context: Optuna's matplotlib plots switch the global style to ggplot for every later figure
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore")
                ax = draw_png()
                fig = ax.figure  # an Axes (Optuna's, ours) or a Figure (trial_charts.py), whose .figure is itself
                fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
                plt.close(fig)
                _visible(draw_html()).write_html(out / f"{name}.html", include_plotlyjs="directory")
        except (ValueError, RuntimeError, IndexError) as e:
            plt.close("all")
            notes.append(f"plot {name} not drawn: {str(e).splitlines()[0]}")

    params = sorted({k for t in study.trials for k in t.params})
    if study.trials:
        title = f"{m} at each finished trial's best epoch, in start order"
        save("history", lambda: _titled(om.plot_optimization_history(study, target_name=m), title),
             lambda: ov.plot_optimization_history(study, target_name=m).update_layout(title=title))
        if params:
            save("parallel", lambda: trial_charts.parallel_plot(study, params, m, run.space.mode),
                 lambda: _parcoords(go, study, params, m, run.space.mode))
            save("metric_vs_params", lambda: trial_charts.slice_plot(study, params, m),
                 lambda: ov.plot_slice(study, params=params, target_name=m))
    else:
        notes.append("no finished trial: history, parallel, slice and box plots left out")
    if len(imp):
        ev = imp["evaluator"].iloc[0]
        save("importance", lambda: _barh(plt, imp, f"parameter importance ({ev}, {m})"),
             lambda: go.Figure(go.Bar(x=imp["importance"][::-1], y=imp["param"][::-1], orientation="h"),
                               layout={"title": f"parameter importance ({ev}, {m})"}))
    if pareto is not None and pareto.trials:
        names, modes = [n for n, _, _ in run.space.objectives], [d for _, _, d in run.space.objectives]
        save("pareto", lambda: trial_charts.pareto_plot(pareto, names, modes),
             lambda: ov.plot_pareto_front(pareto, target_names=names))
    kd = {p.key: [t.value for t in run.trials if t.pair == p.key and t.finished and t.kd_on] for p in run.space.pairs}
    off = {k: [t.value for t in run.trials if t.pair == k and t.finished and not t.kd_on] for k in kd}
    kd = {k: v for k, v in kd.items() if v or off[k]}
    if kd:
        title = f"{m} at best epoch per pair: DSG-KD trials (box), KD-off control (x)"
        save("pairs_box", lambda: _box(plt, kd, off, m, title),
             lambda: go.Figure([go.Box(y=v, name=k, boxpoints="all", showlegend=False) for k, v in kd.items()]
                               + [go.Scatter(x=[k] * len(v), y=v, mode="markers", name=f"KD-off {k}",
                                             marker={"symbol": "x", "size": 11, "color": "red"})
                                  for k, v in off.items() if v and k in kd],
                               layout={"title": title, "yaxis_title": m}))
    shown = [t for t in run.ranked() if t.value is not None][:top]
    if shown:
        save("curves", lambda: _curves(plt, shown, m),
             lambda: go.Figure([go.Scatter(x=t.progress["epoch"], y=t.progress[m], mode="lines+markers",
                                           name=_label(t)) for t in shown],
                               layout={"title": f"{m} per epoch, top {len(shown)} trials",
                                       "xaxis_title": "epoch", "yaxis_title": m}))
    return notes


def _label(t: Trial) -> str:
    tail = "" if t.status == FINISHED else f" [{t.status.lower()}]"
    return f"{t.trial_id} {t.pair}{'' if t.kd_on else ' KD-off'}{tail}"


def _titled(ax, title: str):
    ax.set_title(title, fontsize=10)
    return ax


def _barh(plt, imp, title: str):
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(imp)))
    ax.barh(list(imp["param"])[::-1], list(imp["importance"])[::-1])
    ax.set(title=title, xlabel="importance")
    return ax


def _box(plt, kd: dict[str, list[float]], off: dict[str, list[float]], m: str, title: str):
    """One row per pair: pair names (`biobert-base-cased-v1.2>xlm-roberta-base`) read across, never crowd."""
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.6 * len(kd)))
    ax.boxplot([v or [float("nan")] for v in kd.values()], tick_labels=list(kd), orientation="horizontal")
    for i, key in enumerate(kd, 1):
        ax.scatter(kd[key], [i] * len(kd[key]), s=14, color=trial_charts.SERIES[0])
        ax.scatter(off[key], [i] * len(off[key]), marker="x", s=50, color="red")
    ax.set_title(title, fontsize=9)
    ax.set(xlabel=m)
    ax.invert_yaxis()  # the first pair on top, in the space's order
    return ax


def _curves(plt, trials: list[Trial], m: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.set_prop_cycle(color=trial_charts.SERIES)
    for t in trials:
        line, = ax.plot(t.progress["epoch"], t.progress[m], marker=".", label=_label(t))
        ax.plot([t.epoch], [t.value], marker="*", markersize=11, color=line.get_color())
    ax.set(title=f"{m} per epoch, top {len(trials)} trials (star: best epoch)", xlabel="epoch", ylabel=m)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    return ax


def _parcoords(go, study, params: list[str], m: str, mode: str):
    """plotly's own parallel coordinates (axes can be dragged and brushed) on the PNG's axes and ticks."""
    dims = [{"label": name, "values": heights, "range": [trial_charts.UNSET - 0.02, 1.02],
             "tickvals": [h for h, _ in ticks], "ticktext": [label for _, label in ticks]}
            for name, heights, ticks in trial_charts.coordinates(study.trials, params, m)]
    line = {"color": [t.values[0] for t in study.trials], "colorscale": "Blues", "reversescale": mode == "min",
            "showscale": True, "colorbar": {"title": {"text": m}}}
    return go.Figure(go.Parcoords(line=line, dimensions=dims),
                     layout={"title": f"finished trials at their best epochs: {m} and the settings"})


def _visible(fig):
    """Trial colour scales (Optuna's Blues and Reds) start at white: start them at `trial_charts.LIGHTEST` instead,
    on a white plot area as the PNGs, so the first (or worst) trial does not vanish into the background."""
    from plotly.colors import sample_colorscale

    for trace in fig.data:
        for part in ("marker", "line"):
            holder = getattr(trace, part, None)
            scale = getattr(holder, "colorscale", None) if holder is not None else None
            if scale:
                at = [trial_charts.LIGHTEST + (1 - trial_charts.LIGHTEST) * i / 8 for i in range(9)]
                tones = sample_colorscale([list(stop) for stop in scale], at)
                holder.colorscale = [[i / 8, tone] for i, tone in enumerate(tones)]
    return fig.update_layout(template="plotly_white")
