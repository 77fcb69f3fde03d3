"""The analysis figures stay readable: drawn for a run with long categorical labels (pair names, layer maps), no
two labels of a PNG overlap and every trial drawn stands out from its background (WCAG's 3:1 for graphics);
the HTML pages' trial colour scales do not start at white either, on a white plot area."""
import json
import re

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from dsgkd.report.analysis import importance, results_study
from dsgkd.report.analysis_plots import write_plots
from handmade_runs import make_run


def luminance(rgb) -> float:
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(color, background) -> float:
    """WCAG contrast ratio of `color` composited (by its alpha) over an opaque `background`."""
    r, g, b, a = to_rgba(color)
    bg = to_rgba(background)
    shown = [a * c + (1 - a) * k for c, k in zip((r, g, b), bg)]
    hi, lo = sorted((luminance(shown), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def drawn_texts(fig: Figure, renderer):
    """Every piece of text the PNG shows: tick labels in view, axis labels, titles, annotations, legends."""
    out = [fig._suptitle] if fig._suptitle else []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_window_extent(renderer)
        for axis, lo, hi in ((ax.xaxis, box.x0, box.x1), (ax.yaxis, box.y0, box.y1)):
            for label in axis.get_ticklabels() + axis.get_ticklabels(minor=True):
                where = label.get_window_extent(renderer)
                middle = (where.x0 + where.x1) / 2 if axis is ax.xaxis else (where.y0 + where.y1) / 2
                if lo - 1 <= middle <= hi + 1:  # a tick outside the view is not drawn
                    out.append(label)
            out.append(axis.label)
        out += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.get_legend():
            out += ax.get_legend().get_texts()
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def problems(fig: Figure) -> list[str]:
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    found = []
    texts = drawn_texts(fig, renderer)
    boxes = [t.get_window_extent(renderer).expanded(1, 1).shrunk(0.98, 0.9) for t in texts]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            if a.overlaps(boxes[j]):
                found.append(f"labels overlap: {texts[i].get_text()!r} and {texts[j].get_text()!r}")
    for ax in fig.axes:
        background = ax.get_facecolor() if to_rgba(ax.get_facecolor())[3] > 0 else fig.get_facecolor()
        points = [c for coll in ax.collections if isinstance(coll, PathCollection) and len(coll.get_offsets())
                  for c in coll.get_facecolors()]
        points += [line.get_color() for line in ax.get_lines()  # data series drawn with markers: trials
                   if line.get_marker() not in (None, "None", "", " ") and len(line.get_xdata())]
        for c in points:
            if contrast(c, background) < 3:
                found.append(f"colour {tuple(np.round(to_rgba(c), 2))} on {background}: contrast "
                             f"{contrast(c, background):.2f}")
    return found


@pytest.fixture
def drawn(tmp_path, monkeypatch):
    """write_plots for a 15-trial hand-made run; each PNG is checked as it is saved."""
    seen = {}
    save = Figure.savefig

    def checked(fig, path, *args, **kwargs):
        seen[str(path).rsplit("/", 1)[-1].removesuffix(".png")] = problems(fig)
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked)
    rng = np.random.default_rng(4)
    run = make_run(tmp_path, [(float(a), float(b)) for a, b in zip(rng.uniform(0.5, 0.9, 15), rng.uniform(0.1, 0.3, 15))])
    study = results_study(run)
    imp, _ = importance(study)
    notes = write_plots(run, study, imp, tmp_path / "plots", pareto=results_study(run, both_objectives=True))
    return {"seen": seen, "notes": notes, "out": tmp_path / "plots"}


def test_every_png_is_drawn_and_readable(drawn):
    assert drawn["notes"] == []
    assert set(drawn["seen"]) == {"history", "parallel", "metric_vs_params", "importance", "pareto", "pairs_box",
                                  "curves"}
    assert {name: found for name, found in drawn["seen"].items() if found} == {}


def test_the_check_catches_what_the_old_plots_did(tmp_path):
    """Optuna's own slice plot of the same run: overlapping pair labels and a near-white trial 0."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna.visualization.matplotlib as om

    run = make_run(tmp_path, [(0.5 + 0.02 * i, 0.2) for i in range(12)])
    study = results_study(run)
    with matplotlib.rc_context():
        ax = om.plot_slice(study, params=["pair", "layer_map", "distill.selector"])
        found = problems(ax.flat[0].figure)
    assert any(f.startswith("labels overlap") for f in found)
    assert any(f.startswith("colour") for f in found)


def test_html_colour_scales_start_visible(drawn):
    for page in ("metric_vs_params", "parallel", "pareto"):
        html = (drawn["out"] / f"{page}.html").read_text()
        scales = re.findall(r'"colorscale":(\[\[.*?\]\])', html)
        assert scales, page
        for scale in scales:
            first = json.loads(scale)[0][1]  # "rgb(r, g, b)" on a trace, "#rrggbb" in plotly's template
            rgb = to_rgba(first) if first.startswith("#") else [float(v) / 255 for v in re.findall(r"[\d.]+", first)]
            assert contrast((*rgb[:3], 1), "white") >= 3, (page, first)
        assert '"colorscale":"' not in html, page  # no named scale left that starts at white
        assert '"template":{"data"' not in html or '"plot_bgcolor":"white"' in html, page
