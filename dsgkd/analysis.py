"""`dsgkd analyze RUN`: what a search found, as tables and plots in RUN/analysis/.

Every number here is a trial's *best epoch* by the search metric, read from the trial's per-epoch reports:
the engine keeps that epoch's weights, but Tune's `get_best_result(scope="all")` returns the last report's
metrics and OptunaSearch tells Optuna the last report (so an ASHA-stopped or declining trial is stored in
optuna.db with a worse value than it reached). The Tune experiment (`ExperimentAnalysis` on RUN/tune) gives
the trials, their configs and directories; the raw experiment-state JSON gives their status as the search
last saved it (Tune's loader turns RUNNING into PENDING); result.json, read line by line so the line a live
or killed search was writing is skipped, gives the epochs. The Optuna study gives each trial's number.

A trial's `stopped_by`: `max_epochs` (it reached min(asha.max_t, train.epochs)), `patience` (the engine's
early stopping: `train.patience` epochs without improvement at its last epoch), `asha` (terminated earlier
than both: ASHA cut it at a rung), else its status (`error`, `running`, `pending`). Aggregates (pairs.md,
importance, history/parallel/slice/box plots) use finished (TERMINATED) trials only; the leaderboard and the
learning curves also show running and errored trials with what they reported.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.space import CategoricalDist, FloatDist, IntDist, SearchSpace, flatten_params, load_space

FINISHED = "TERMINATED"
EVALUATORS = {"fanova": "FanovaImportanceEvaluator", "ped-anova": "PedAnovaImportanceEvaluator",
              "mdi": "MeanDecreaseImpurityImportanceEvaluator"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(\([\w.]*\))?: \S")


@dataclass
class Trial:
    trial_id: str
    order: int                      # start order (pending trials last)
    status: str                     # TERMINATED / ERROR / RUNNING / PENDING / PAUSED
    params: dict[str, Any]          # Optuna's names: pair, layer_map/<pair>, dotted settings
    cfg: RunConfig | None
    progress: pd.DataFrame          # one row per reported epoch
    error: str | None = None
    value: float | None = None      # best value of the search metric over the reported epochs
    epoch: int | None = None        # the epoch it came from
    epochs: int = 0                 # epochs reported
    max_epochs: int | None = None
    stopped_by: str = ""
    optuna_number: int | None = None

    @property
    def pair(self) -> str | None:
        return self.params.get("pair")

    @property
    def kd_on(self) -> bool:
        return self.cfg is None or self.cfg.distill.kd_on

    @property
    def finished(self) -> bool:
        return self.status == FINISHED and self.value is not None and math.isfinite(self.value)

    def searched(self, space: SearchSpace) -> dict[str, Any]:
        """pair, layer_map (folded from layer_map/<pair>) and the space's params: one name per setting."""
        out = {"pair": self.pair, "layer_map": self.params.get(f"layer_map/{self.pair}")}
        return out | {k: self.params[k] for k in space.params if k in self.params}


@dataclass
class Run:
    path: Path
    space: SearchSpace
    trials: list[Trial]
    study: Any | None
    notes: list[str]

    @property
    def metric(self) -> str:
        return self.space.metric

    def ranked(self, trials: list[Trial] | None = None) -> list[Trial]:
        """Best first by best-epoch value (ties: earlier epoch, earlier trial); trials without a value last."""
        sign = -1 if self.space.mode == "max" else 1
        return sorted(self.trials if trials is None else trials,
                      key=lambda t: (t.value is None or not math.isfinite(t.value),
                                     sign * t.value if t.value is not None and math.isfinite(t.value) else 0,
                                     t.epoch or 0, t.order))


# ------------------------------------------------------------------------------------------ loading
def load_run(run_dir: str | Path, *, storage: str | None = None, with_study: bool = True) -> Run:
    run_dir = Path(run_dir).resolve()
    tune_dir = run_dir / "tune"
    if not (run_dir / "space.yaml").is_file() or not tune_dir.is_dir():
        raise UserError(f"{run_dir}: not a search run (needs space.yaml and tune/ written by `dsgkd search --out`)")
    space = load_space(run_dir / "space.yaml")
    experiment = _experiment(tune_dir)
    statuses = _saved_statuses(tune_dir)
    started = sorted(experiment.trials, key=lambda t: t.run_metadata.start_time or math.inf)  # state file: any order
    trials = [_trial(t, i, statuses.get(t.trial_id, t.status), space) for i, t in enumerate(started)]
    study, note = _study(run_dir, storage) if with_study else (None, None)
    if study is not None:
        _match_optuna(trials, study)
    return Run(run_dir, space, trials, study, [note] if note else [])


def _experiment(tune_dir: Path):
    from ray.tune import ExperimentAnalysis

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return ExperimentAnalysis(str(tune_dir))
        except ValueError as e:  # no snapshot yet, or a live search is rewriting it
            if attempt == 4:
                raise UserError(f"{tune_dir}: cannot read the Tune experiment ({str(e).splitlines()[0]})") from None
            time.sleep(1)


def _saved_statuses(tune_dir: Path) -> dict[str, str]:
    states = sorted(tune_dir.glob("experiment_state-*.json"))
    try:
        data = json.loads(states[-1].read_text(encoding="utf-8"))
        return {t["trial_id"]: t["status"] for t in (json.loads(row[0]) for row in data["trial_data"])}
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        return {}


def _trial(t, order: int, status: str, space: SearchSpace) -> Trial:
    params = dict(flatten_params(t.config))
    try:
        cfg = space.trial_config(t.config)
    except (UserError, KeyError, StopIteration):
        cfg = None
    rec = Trial(t.trial_id, order, status, params, cfg, _progress(Path(t.path) / "result.json"))
    df, metric = rec.progress, space.metric
    if metric in df and df[metric].notna().any():
        i = df[metric].idxmax() if space.mode == "max" else df[metric].idxmin()
        rec.value, rec.epoch = float(df.at[i, metric]), int(df.at[i, "epoch"])
    rec.epochs = int(df["epoch"].max()) if len(df) else 0
    rec.max_epochs = min(space.max_t, cfg.train.epochs) if cfg else space.max_t
    if status == "ERROR":
        rec.error = _error_line(Path(t.path), t.run_metadata.error_filename)
    rec.stopped_by = _stop_reason(rec)
    return rec


def _progress(result_json: Path) -> pd.DataFrame:
    rows = []
    with contextlib.suppress(OSError):
        for line in result_json.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the line a live or killed search was writing
                continue
            row.pop("config", None)
            if row.get("epoch") is not None:
                rows.append(row)
    if not rows:
        return pd.DataFrame({"epoch": pd.Series(dtype=int)})
    df = pd.DataFrame(rows).drop_duplicates("epoch", keep="last")  # a resumed trial may repeat an epoch
    return df.sort_values("epoch").reset_index(drop=True)


def _stop_reason(t: Trial) -> str:
    if t.status != FINISHED:
        return t.status.lower()
    if not t.epochs:
        return ""
    if t.max_epochs and t.epochs >= t.max_epochs:
        return "max_epochs"
    best = int(t.progress["best_epoch"].iloc[-1]) if "best_epoch" in t.progress else (t.epoch or 0)
    if t.cfg is not None and t.epochs - best >= t.cfg.train.patience:
        return "patience"
    return "asha"


def _error_line(trial_dir: Path, name: str | None) -> str:
    """The last exception line of Tune's error.txt (the cause, after Ray's wrappers), type shortened."""
    for f in ([trial_dir / name] if name else []) + [trial_dir / "error.txt"]:
        with contextlib.suppress(OSError):
            lines = [_ANSI.sub("", line).rstrip() for line in f.read_text(errors="replace").splitlines()]
            found = [line for line in lines if _EXCEPTION_LINE.match(line)] or [line for line in lines if line]
            if found:
                kind, _, msg = found[-1].partition(": ")
                return f"{kind.rsplit('.', 1)[-1]}: {msg}"[:300] if msg else found[-1][:300]
    return f"no error file in {trial_dir.name}"


def _study(run_dir: Path, storage: str | None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None and not (run_dir / "optuna.db").is_file():  # load_study would create an empty file
        return None, f"no {run_dir / 'optuna.db'}: Optuna trial numbers left out (pass --optuna-storage)"
    url = storage or f"sqlite:///{run_dir / 'optuna.db'}"
    try:
        return optuna.load_study(study_name=run_dir.name, storage=url), None
    except KeyError:
        return None, f"no Optuna study {run_dir.name!r} in {url}"


def _match_optuna(trials: list[Trial], study) -> None:
    """Tune and Optuna share no id; a trial's sampled params are its Optuna params, matched in order."""
    pool: dict[tuple, list[Trial]] = {}
    for t in trials:
        pool.setdefault(_key(t.params), []).append(t)
    for ot in sorted(study.get_trials(deepcopy=False), key=lambda ot: ot.number):
        if pool.get(_key(ot.params)):
            pool[_key(ot.params)].pop(0).optuna_number = ot.number


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


# ------------------------------------------------------------------------------------------- tables
def leaderboard(run: Run) -> pd.DataFrame:
    rows = []
    ranked = run.ranked()
    for rank, t in enumerate(ranked, 1):
        rows.append({"rank": rank if t.value is not None else None, "trial": t.trial_id,
                     "optuna_trial": t.optuna_number, **t.searched(run.space), "kd": "on" if t.kd_on else "off",
                     run.metric: t.value, "best_epoch": t.epoch, "epochs": t.epochs, "max_epochs": t.max_epochs,
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
def results_study(run: Run):
    """An in-memory Optuna study of the finished trials valued at their best epochs, with layer_map/<pair>
    folded into one `layer_map` parameter (fANOVA and MDI skip parameters absent from some trials).
    Settings with a single possible value are left out: nothing to attribute to them."""
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
    study = optuna.create_study(direction="maximize" if space.mode == "max" else "minimize", study_name=run.path.name)
    for t in sorted((t for t in run.trials if t.finished), key=lambda t: t.order):
        params = {k: v for k, v in t.searched(space).items() if k in dists and v is not None}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=t.value,
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
    cls = getattr(optuna.importance, EVALUATORS[evaluator])
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
    imp, note = importance(study, evaluator)
    notes = run.notes + ([note] if note else [])
    from dsgkd.export import staged_dir
    from dsgkd.plots import write_plots

    with staged_dir(run.path / "analysis") as out:
        board.to_csv(out / "leaderboard.csv", index=False)
        (out / "leaderboard.md").write_text(f"# Leaderboard: {run.metric} ({run.space.mode}) at each trial's best "
                                            f"epoch\n\n" + markdown_table(board), encoding="utf-8")
        (out / "pairs.md").write_text(pairs_markdown(run), encoding="utf-8")
        imp.to_csv(out / "importance.csv", index=False)
        if plots:
            notes += write_plots(run, study, imp, out / "plots", top=top)
        text = summary(run, board, imp, notes, top)
        (out / "summary.md").write_text(text, encoding="utf-8")
    return text + f"\nwrote {run.path / 'analysis'}\n"


def summary(run: Run, board: pd.DataFrame, imp: pd.DataFrame, notes: list[str], top: int) -> str:
    counts = pd.Series([t.status for t in run.trials]).value_counts().to_dict()
    head = (f"{run.path.name}: {len(run.trials)} trials (" + ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
            + f"); ranked by {run.metric} ({run.space.mode}) at each trial's best epoch")
    cols = [c for c in ("rank", "trial", "pair", "layer_map", *run.space.params, "kd", run.metric, "best_epoch",
                        "epochs", "stopped_by", "error") if c in board]
    shown = board[cols].head(top).astype(object).rename(columns=lambda c: c.removeprefix("distill."))
    shown = shown.map(lambda v: "-" if v is None or v is pd.NA or v != v else f"{v:.4g}" if isinstance(v, float) else v)
    lines = [head, "", shown.to_string(index=False), ""]
    if len(imp):
        lines.append(f"importance ({imp['evaluator'].iloc[0]}): " +
                     ", ".join(f"{p} {v:.2f}" for p, v in zip(imp["param"], imp["importance"])))
    return "\n".join(lines + [f"note: {n}" for n in notes]) + "\n"


def add_analyze_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "analyze", help="leaderboard, per-pair table, importance and plots of a search",
        description="Read RUN/tune (Ray Tune) and RUN/optuna.db and write RUN/analysis/: leaderboard.csv/.md, "
                    "pairs.md, importance.csv, summary.md and plots/*.png + *.html (offline: plotly.min.js beside "
                    "them). Works on finished, running and partly errored searches. Each trial is scored at its "
                    "best epoch, not its last report.")
    p.add_argument("run", type=Path, metavar="RUN", help="the --out directory of `dsgkd search`")
    p.add_argument("--optuna-storage", metavar="URL", help="Optuna RDB URL if the search used one "
                                                           "(default: sqlite:///RUN/optuna.db)")
    p.add_argument("--evaluator", choices=sorted(EVALUATORS), default="fanova",
                   help="Optuna importance evaluator (default: fanova)")
    p.add_argument("--top", type=int, default=5, metavar="K", help="trials in the summary and the learning curves")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=cmd_analyze)
    return p


def cmd_analyze(args: argparse.Namespace) -> int:
    print(analyze(args.run, storage=args.optuna_storage, evaluator=args.evaluator, top=args.top,
                  plots=not args.no_plots), end="")
    return 0
