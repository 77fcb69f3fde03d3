"""The pictures of `dsgkd evaluate --plots DIR`: ROC, precision-recall and reliability diagrams (PNG, Agg).

They draw `core.metrics.curve_points`, the same numbers the evaluation JSON carries, so a figure never says
something the JSON does not. Each marks the operating point at the threshold stored with the student: the
clinician's question is "what does the flag I will see mean", not the whole curve. Every figure is drawn to
memory first and each file is written through a temp sibling, so a failure while drawing writes nothing.
"""
from __future__ import annotations

import io
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.storage import atomic_file

PLOTS = ("roc", "pr", "reliability")


def check_plots_dir(path: str | Path) -> Path:
    """`--plots` must name a directory (existing or to be made), not a file: one line, before any scoring."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--plots {path}: is a file; give a directory to write {', '.join(PLOTS)}.png into")
    return path


def _roc(ax, c, op, title):
    ax.plot(c["roc"]["fpr"], c["roc"]["tpr"], color="C0", label="ROC")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    ax.plot(op["fpr"], op["tpr"], "o", color="C3", ms=8, label=f"threshold {op['threshold']:.3g}")
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
           title=title, xlim=(0, 1), ylim=(0, 1.02))


def _pr(ax, c, op, title, prevalence):
    ax.plot(c["pr"]["recall"], c["pr"]["precision"], color="C0", label="precision-recall")
    ax.axhline(prevalence, ls=":", color="grey", label=f"prevalence {prevalence:.3f}")
    ax.plot(op["recall"], op["precision"], "o", color="C3", ms=8, label=f"threshold {op['threshold']:.3g}")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (positive predictive value)", title=title,
           xlim=(0, 1), ylim=(0, 1.02))


def _reliability(ax, c, op, title):
    r = c["reliability"]
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    ax.plot(r["mean_prob"], r["frac_positive"], "o-", color="C0", label="observed")
    ax.axvline(op["threshold"], color="C3", ls="--", label=f"threshold {op['threshold']:.3g}")
    ax.set(xlabel="predicted probability (mean per bin)", ylabel="fraction positive", title=title,
           xlim=(0, 1), ylim=(0, 1.02))
    counts = ax.twinx()
    counts.bar([b + 0.05 for b in r["bin_low"]], r["count"], width=0.1, alpha=0.15, color="C0")
    counts.set_ylabel("notes per bin")


def draw_eval_plots(result: dict) -> dict:
    """{name: matplotlib Figure} for an evaluation (`serve.evaluate_file`): roc and pr where the file has both
    classes, reliability always."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, op, n, pos = result["curves"], result["curves"]["operating_point"], result["n"], result["n_positive"]
    what = f"{Path(result['data']).name}, {n} notes"
    metric = result["metrics"]
    figures = {}
    for name in PLOTS:
        if name != "reliability" and name not in c:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 5))
        if name == "roc":
            _roc(ax, c, op, f"ROC, AUROC {metric['auroc']['value']:.3f} ({what})")
        elif name == "pr":
            _pr(ax, c, op, f"Precision-recall, AUPRC {metric['auprc']['value']:.3f} ({what})", pos / n)
        else:
            _reliability(ax, c, op, f"Reliability, ECE {metric['ece']['value']:.3f}, T {result['temperature']:.3g} "
                                    f"({what})")
        ax.legend(loc="lower right" if name == "roc" else "best", fontsize=8)
        ax.title.set_fontsize(9)
        figures[name] = fig
    return figures


def write_eval_plots(result: dict, out: str | Path) -> list[Path]:
    """name.png for each of `draw_eval_plots` into `out`, all rendered before the first file is written.
    Returns the paths written."""
    import matplotlib.pyplot as plt

    drawn: dict[str, bytes] = {}
    for name, fig in draw_eval_plots(result).items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        drawn[name] = buf.getvalue()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in drawn.items():
        with atomic_file(out / f"{name}.png") as tmp:
            tmp.write_bytes(png)
        paths.append(out / f"{name}.png")
    return paths
