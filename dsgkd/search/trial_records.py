"""Reading what a search left on disk: result.json lines, the best epoch of a trial, the Tune experiment, the
trials' saved statuses, reselect's re-runs; and the one order of "best trials" everything ranks by.

Shared by the search's own summary, ASHA's replay on resume and `dsgkd analyze`, so a killed search's
half-written line is skipped the same way everywhere. Run folders travel (shared disks, archives) and are
read by people who did not make them, so what `analyze` and `export` read is data: `read_trials` takes the
trials from the experiment state as plain JSON (Tune's own loader decodes the pickles embedded in it, and
unpickling runs code). Only the search itself, which restores Ray's pickles anyway, uses `load_experiment`
(Ray's ExperimentAnalysis).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsgkd.errors import UserError


def parse_results(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Tune's result.json rows; the line being written when a search was killed is skipped."""
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_results(path: Path) -> list[dict[str, Any]]:
    with contextlib.suppress(OSError):
        return parse_results(path.read_text(encoding="utf-8").splitlines())
    return []


def best_epoch(df, metric: str, mode: str) -> tuple[float, int] | None:
    """(value, epoch) of the best reported epoch by `metric` in a per-epoch DataFrame; None if none reported."""
    if df is None or metric not in df or not df[metric].notna().any():
        return None
    i = df[metric].idxmax() if mode == "max" else df[metric].idxmin()
    return float(df.at[i, metric]), int(df.at[i, "epoch"])


def rank_key(value: float | None, epoch: int | None, order: float, mode: str) -> tuple:
    """The one order of "best trials" (analysis, export, reselect, checkpoint pruning): best value first, ties
    to the earlier best epoch, then the earlier trial; trials without a finite value last."""
    missing = value is None or not math.isfinite(value)
    return missing, 0 if missing else (-value if mode == "max" else value), epoch or 0, order


def saved_statuses(tune_dir: Path) -> dict[str, str]:
    """Trial id → status as the search last saved it in its experiment state (Tune's loader turns RUNNING into
    PENDING); empty when there is no readable state yet."""
    states = sorted(tune_dir.glob("experiment_state-*.json"))
    try:
        data = json.loads(states[-1].read_text(encoding="utf-8"))
        return {t["trial_id"]: t["status"] for t in (json.loads(row[0]) for row in data["trial_data"])}
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        return {}


RESELECT_FILE = "reselect.json"


def read_reselect(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN/reselect.json (`dsgkd.search.reselect`): the plan and the re-runs so far; None when there is none."""
    path = Path(run_dir) / RESELECT_FILE
    with contextlib.suppress(OSError):
        return json.loads(path.read_text(encoding="utf-8"))
    return None


@dataclass(frozen=True)
class SavedTrial:
    """A trial as the experiment state last saved it, read as data."""

    trial_id: str
    status: str
    config: dict[str, Any]
    path: Path                    # its directory, RUN/tune/<name>
    start_time: float | None
    error_filename: str | None    # a file name in `path`


def read_trials(tune_dir: Path) -> list[SavedTrial]:
    """The trials of RUN/tune's latest experiment state, from its JSON alone: no embedded pickle is decoded (a
    trial's config comes from its params.json when the state holds it pickled). Retried while a live search
    rewrites the state."""
    for attempt in range(5):
        states = sorted(tune_dir.glob("experiment_state-*.json"))
        try:
            if not states:
                raise ValueError("no experiment state yet")
            rows = json.loads(states[-1].read_text(encoding="utf-8"))["trial_data"]
            return [_saved_trial(tune_dir, json.loads(trial), json.loads(meta)) for trial, meta in rows]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            if attempt == 4:
                raise UserError(f"{tune_dir}: cannot read the Tune experiment state "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
            time.sleep(1)


def _saved_trial(tune_dir: Path, trial: dict, meta: dict) -> SavedTrial:
    name = trial.get("relative_logdir") or trial.get("custom_dirname")
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(f"trial {str(trial.get('trial_id'))[:16]!r}: its directory is not a name inside tune/")
    path = tune_dir / name
    config = trial.get("config")
    if not isinstance(config, dict) or "_type" in config:  # Tune's CLOUDPICKLE_FALLBACK: never decoded here
        config = _params_json(path)
    error = meta.get("error_filename")
    start = meta.get("start_time")
    return SavedTrial(str(trial["trial_id"]), str(trial["status"]), config, path,
                      float(start) if isinstance(start, (int, float)) else None,
                      error if isinstance(error, str) and Path(error).name == error else None)


def _params_json(trial_dir: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        config = json.loads((trial_dir / "params.json").read_text(encoding="utf-8"))
        if isinstance(config, dict):
            return config
    return {}


def load_experiment(tune_dir: Path):
    """Tune's ExperimentAnalysis of RUN/tune, retried while a live search is rewriting its snapshot. It decodes
    the pickles in the experiment state: for the search's own use only (`read_trials` reads a run as data)."""
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
