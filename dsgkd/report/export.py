"""What leaves a search run: `dsgkd export RUN`, the best trial as a runnable RunConfig.

Export picks the trial by its best epoch (DESIGN §5: `ResultGrid.get_best_result(scope="all")` returns the
last report's metrics, and Optuna stores the last report) among finished trials with a KD weight > 0: the
exported config feeds `dsgkd train --seeds`, which runs DSG-KD against its own KD-off control, so exporting the
control would compare it with itself. When the control scored best the user is told, and `--allow-control`
exports it anyway. The YAML is validated by re-reading it and written atomically (temp file + rename).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from dsgkd import __version__
from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.report.results import Run, Trial, load_run
from dsgkd.storage import atomic_write_text


def best_trial(run: Run, *, allow_control: bool = False) -> tuple[Trial, Trial | None]:
    """The best finished trial (KD-on unless allowed) and, when a KD-off control beat it, that control."""
    finished = run.ranked([t for t in run.trials if t.finished and t.cfg is not None])
    if not finished:
        states = ", ".join(f"{t.trial_id} {t.status.lower()}" for t in run.trials) or "no trials"
        raise UserError(f"{run.path}: no finished trial with a {run.metric} to export yet ({states})")
    pool = finished if allow_control else [t for t in finished if t.kd_on]
    if not pool:
        raise UserError(f"{run.path}: only KD-off control trials finished; `dsgkd train --seeds` compares a "
                        f"KD config with its control, so pass --allow-control to export the control itself")
    best = pool[0]
    return best, (finished[0] if finished[0] is not best else None)


def export_best(run_dir: str | Path, out: str | Path | None = None, *, allow_control: bool = False
                ) -> tuple[Path, RunConfig, Trial, Trial | None]:
    run = load_run(run_dir, with_study=False)
    best, better_control = best_trial(run, allow_control=allow_control)
    cfg = best.cfg.with_overrides({
        "provenance.run": str(run.path), "provenance.trial_id": best.trial_id, "provenance.metric": run.metric,
        "provenance.value": best.value, "provenance.epoch": best.epoch, "provenance.dsgkd_version": __version__,
        "provenance.data_fingerprint": data_fingerprint(best.cfg), "provenance.seed": best.cfg.train.seed}, source=f"trial {best.trial_id}")
    target = Path(out) if out else run.path / "best.yaml"
    text = cfg.dump_yaml()
    if RunConfig.from_dict(yaml.safe_load(text), source=str(target)) != cfg:
        raise RuntimeError("exported YAML does not read back as the same config")
    atomic_write_text(target, text)
    return target, cfg, best, better_control


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
