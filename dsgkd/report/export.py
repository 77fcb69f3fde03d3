"""What leaves a search run: `dsgkd export RUN`, the best trial as a runnable RunConfig.

Export picks the trial by its best epoch (docs/architecture.md, "Search": `ResultGrid.get_best_result(scope="all")`
returns the last report's metrics, and Optuna stores the last report) among finished trials with a KD weight > 0:
the exported config feeds `dsgkd train --seeds`, which runs DSG-KD against its own KD-off control, so exporting the
control would compare it with itself. When the control scored best the user is told, and `--allow-control` exports
it anyway. With `budget.reselect` the search re-ran its best trials on fresh seeds, and export picks by the mean
over those seeds instead (the search value of the best trial was selected for being high), recording the seeds,
per-seed values, mean and std in `provenance.reselect` beside the search run's own value. The YAML is validated by
re-reading it and written atomically (temp file + rename).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from dsgkd import __version__
from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.report.run_model import Run, Trial, load_run
from dsgkd.search.run_lock import REPORT_LOCK_FILE, run_lock
from dsgkd.search.trial_records import rank_key
from dsgkd.storage import atomic_write_text


def best_trial(run: Run, *, allow_control: bool = False) -> tuple[Trial, Trial | None]:
    """The best finished trial (KD-on unless allowed) and, when a KD-off control beat it, that control."""
    finished = run.ranked([t for t in run.trials if t.finished and t.cfg is not None])
    if not finished:
        states = ", ".join(f"{t.trial_id} {t.status.lower()}" for t in run.trials) or "no trials"
        raise UserError(f"{run.path}: no finished trial with a {run.metric} to export yet ({states})")
    if run.space.budget.reselect is not None:
        return _best_by_mean(run, allow_control)
    pool = finished if allow_control else [t for t in finished if t.kd_on]
    if not pool:
        raise UserError(f"{run.path}: only KD-off control trials finished; `dsgkd train --seeds` compares a "
                        f"KD config with its control, so pass --allow-control to export the control itself")
    best = pool[0]
    return best, (finished[0] if finished[0] is not best else None)


def _best_by_mean(run: Run, allow_control: bool) -> tuple[Trial, Trial | None]:
    """With `budget.reselect`, the trial with the best mean over its fresh seeds (ties: the better search rank,
    candidates before controls). Every planned re-run must have run: a partial mean would favour the trials
    whose lucky seeds happened to finish first. A trial with a failed re-run is left out, with a warning."""
    planned = [t for t in run.trials if t.reselect is not None]
    left = sum(len(t.reselect.missing) for t in planned)
    if run.reselect is None or left:
        what = (f"{left} of {sum(len(t.reselect.seeds) for t in planned)} re-runs are missing" if left
                else "RUN/reselect.json is not written yet")
        raise UserError(f"{run.path}: budget.reselect makes export pick by the mean over fresh seeds, but {what}; "
                        f"`dsgkd search --out {run.path} --resume` runs them")
    for t in planned:
        for seed, error in t.reselect.errors.items():
            warnings.warn(f"trial {t.trial_id} left out: its re-run on seed {seed} failed ({error})", stacklevel=3)
    done = sorted((t for t in planned if t.reselect.complete),
                  key=lambda t: rank_key(t.reselect.mean, None, (t.reselect.role != "candidate",
                                                                 t.reselect.search_rank), run.space.mode))
    pool = done if allow_control else [t for t in done if t.kd_on]
    if not pool:
        raise UserError(f"{run.path}: no re-run {'' if allow_control else 'KD-on '}trial has a value on every seed "
                        f"({len(planned)} re-run: see RUN/reselect.json)"
                        + ("; --allow-control exports the KD-off control" if done else ""))
    return pool[0], (done[0] if done[0] is not pool[0] else None)


def export_best(run_dir: str | Path, out: str | Path | None = None, *, allow_control: bool = False,
                label_names: list[str] | None = None) -> tuple[Path, RunConfig, Trial, Trial | None]:
    """The best trial's RunConfig with its provenance, written to `out`; `label_names` sets `data.label_names`
    (the names the re-run's student gives classes 0 and 1), a serving choice no trial's score depends on."""
    run = load_run(run_dir, with_study=False)
    best, better_control = best_trial(run, allow_control=allow_control)
    cfg = best.cfg.with_overrides({
        "provenance.run": str(run.path), "provenance.trial_id": best.trial_id, "provenance.metric": run.metric,
        "provenance.value": best.value, "provenance.epoch": best.epoch, "provenance.dsgkd_version": __version__,
        "provenance.data_fingerprint": data_fingerprint(best.cfg), "provenance.seed": best.cfg.train.seed,
        "provenance.reselect": _seed_values(best) if run.space.budget.reselect is not None else None,
        **({"data.label_names": label_names} if label_names else {})},
        source=f"trial {best.trial_id}")
    target = Path(out) if out else run.path / "best.yaml"
    text = cfg.dump_yaml()
    if RunConfig.from_dict(yaml.safe_load(text), source=str(target)) != cfg:
        raise RuntimeError("exported YAML does not read back as the same config")
    with run_lock(run.path, "export", REPORT_LOCK_FILE):
        atomic_write_text(target, text)
    return target, cfg, best, better_control


def _seed_values(trial: Trial) -> dict:
    r = trial.reselect
    return {"seeds": r.seeds, "values": [r.values[s] for s in r.seeds], "mean": r.mean, "std": r.std}


def data_fingerprint(cfg: RunConfig) -> str | None:
    """Content hash of the train/val/test notes the trial saw (None, with a warning, if they are gone)."""
    from dsgkd.data.emr import load_splits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_splits(cfg.data).fingerprint
    except UserError as e:
        warnings.warn(f"data fingerprint left out: {e}", stacklevel=2)
        return None
