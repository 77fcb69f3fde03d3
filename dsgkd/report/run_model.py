"""The run model of a search: its trials as the search left them (`load_run` → `Run` of `Trial`s).

Every number is a trial's *best epoch* by the search metric, read from the trial's per-epoch reports:
the engine keeps that epoch's weights, but Tune's `get_best_result(scope="all")` returns the last report's
metrics and OptunaSearch tells Optuna the last report (so an ASHA-stopped or declining trial is stored in
optuna.db with a worse value than it reached). Everything is read as data, never unpickled (a run folder may
come from someone else): Tune's experiment-state JSON gives the trials, their configs, directories and their
status as the search last saved it (`trial_records.read_trials`); result.json, read line by line so the line
a live or killed search was writing is skipped, gives the epochs. The Optuna study (named in RUN/study.json)
gives each trial's number, and RUN/reselect.json (`budget.reselect`) each re-run trial's values on its fresh
seeds (`Trial.reselect`).

A trial's `stopped_by`: `max_epochs` (it reached min(asha.max_t, train.epochs)), `patience` (the engine's
early stopping: `train.patience` epochs without improvement at its last epoch), `asha` (terminated earlier
than both: ASHA cut it at a rung), else its status (`error`, `running`, `pending`).
"""
from __future__ import annotations

import contextlib
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.redact import redact_url
from dsgkd.search.credentials import STORAGE_PASSWORD_ENV, with_password
from dsgkd.search.space import SearchSpace, flatten_params, load_space
from dsgkd.search.trial_records import SavedTrial, best_epoch, rank_key, read_reselect, read_results, read_trials

FINISHED = "TERMINATED"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(\([\w.]*\))?: \S")


@dataclass
class SeedRuns:
    """A trial's re-runs on fresh seeds (`budget.reselect`, RUN/reselect.json): each a best-epoch value."""

    role: str                       # candidate (one of the K best KD-on trials) or control (KD-off, of their pair)
    search_rank: int                # its place by search value among the candidates (or the controls)
    seeds: list[int]                # the seeds planned for it
    values: dict[int, float] = field(default_factory=dict)   # seed → value, re-runs that finished
    errors: dict[int, str] = field(default_factory=dict)     # seed → why the re-run failed

    @property
    def missing(self) -> list[int]:
        return [s for s in self.seeds if s not in self.values and s not in self.errors]

    @property
    def complete(self) -> bool:
        return all(s in self.values for s in self.seeds)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over the seeds (None below two)."""
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else None


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
    second: float | None = None     # the space's second_objective at that epoch (None without one)
    epochs: int = 0                 # epochs reported
    max_epochs: int | None = None
    stopped_by: str = ""
    optuna_number: int | None = None
    path: Path | None = None        # its Tune trial directory
    reselect: SeedRuns | None = None

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
    reselect: dict[str, Any] | None = None   # RUN/reselect.json as written (plan and re-runs)

    @property
    def metric(self) -> str:
        return self.space.metric

    def ranked(self, trials: list[Trial] | None = None) -> list[Trial]:
        """Best first by best-epoch value (ties: earlier epoch, earlier trial); trials without a value last."""
        return sorted(self.trials if trials is None else trials,
                      key=lambda t: rank_key(t.value, t.epoch, t.order, self.space.mode))


# ------------------------------------------------------------------------------------------ loading
def load_run(run_dir: str | Path, *, storage: str | None = None, with_study: bool = True) -> Run:
    run_dir = Path(run_dir).resolve()
    tune_dir = run_dir / "tune"
    if not (run_dir / "space.yaml").is_file() or not tune_dir.is_dir():
        raise UserError(f"{run_dir}: not a search run (needs space.yaml and tune/ written by `dsgkd search --out`)")
    space = load_space(run_dir / "space.yaml")
    started = sorted(read_trials(tune_dir), key=lambda t: t.start_time or math.inf)  # state file: any order
    trials = [_trial(t, i, space) for i, t in enumerate(started)]
    study, note = _study(run_dir, storage) if with_study else (None, None)
    if study is not None:
        _match_optuna(trials, study)
    reselect = read_reselect(run_dir)
    if reselect:
        _attach_reselect(trials, reselect)
    return Run(run_dir, space, trials, study, [note] if note else [], reselect)


def _attach_reselect(trials: list[Trial], reselect: dict[str, Any]) -> None:
    by_id = {t.trial_id: t for t in trials}
    for p in reselect["trials"]:
        if p["trial_id"] in by_id:
            by_id[p["trial_id"]].reselect = SeedRuns(p["role"], p["search_rank"], list(p["seeds"]))
    for r in reselect["runs"]:
        runs = by_id[r["trial_id"]].reselect if r["trial_id"] in by_id else None
        if runs is not None and r["seed"] in runs.seeds:
            if r.get("value") is not None:
                runs.values[r["seed"]] = float(r["value"])
            else:
                runs.errors[r["seed"]] = r.get("error") or "failed"


def _trial(t: SavedTrial, order: int, space: SearchSpace) -> Trial:
    params = dict(flatten_params(t.config))
    try:
        cfg = space.trial_config(t.config)
    except (UserError, KeyError, StopIteration):
        cfg = None
    status = t.status
    rec = Trial(t.trial_id, order, status, params, cfg, _progress(t.path / "result.json"), path=t.path)
    df = rec.progress
    found = best_epoch(df, space.metric, space.mode)
    if found:
        rec.value, rec.epoch = found
        if space.second_objective and space.second_objective in df:
            rec.second = float(df.loc[df["epoch"] == rec.epoch, space.second_objective].iloc[0])
    rec.epochs = int(df["epoch"].max()) if len(df) else 0
    rec.max_epochs = min(space.max_t, cfg.train.epochs) if cfg else space.max_t
    if status == "ERROR":
        rec.error = _error_line(t.path, t.error_filename)
    rec.stopped_by = _stop_reason(rec)
    return rec


def _progress(result_json: Path) -> pd.DataFrame:
    rows = []
    for row in read_results(result_json):
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
    """The run's study, named in RUN/study.json (a run made before it: the run's basename), on `storage`, else
    the recorded storage, else RUN/optuna.db. DSGKD_STORAGE_PASSWORD goes only to a storage the user named: a
    run folder may come from anyone, and the one it records must not collect the password."""
    import optuna

    from dsgkd.search.study import default_url, read_record

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record = read_record(run_dir)
    name = record.study_name if record else run_dir.name
    url = storage or (record.storage if record else None) or default_url(run_dir)
    local = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if local is not None and not Path(local).is_file():  # load_study would create an empty database there
        return None, f"no {local}: Optuna trial numbers left out (pass --optuna-storage)"
    try:
        return optuna.load_study(study_name=name, storage=with_password(url, STORAGE_PASSWORD_ENV) if storage
                                 else url), None
    except KeyError:
        return None, f"no Optuna study {name!r} in {redact_url(url)}"
    except Exception as e:  # SQLAlchemy's and the driver's errors: the analysis goes on without the study
        return None, f"Optuna storage {redact_url(url)} not read ({type(e).__name__}): Optuna trial numbers left out"


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
