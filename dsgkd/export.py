"""What leaves a search run: `dsgkd export RUN` (the best trial as a runnable RunConfig), and the atomic
writes that `dsgkd analyze` shares.

Export picks the trial by its best epoch (DESIGN §5: `ResultGrid.get_best_result(scope="all")` returns the
last report's metrics, and Optuna stores the last report) among finished trials with a KD weight > 0: the
exported config feeds `dsgkd train --seeds`, which runs DSG-KD against its own KD-off control, so exporting the
control would compare it with itself. When the control scored best the user is told, and `--allow-control`
exports it anyway. The YAML is validated by re-reading it and written atomically (temp file + rename).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import yaml

from dsgkd import __version__
from dsgkd.analysis import Run, Trial, load_run
from dsgkd.config import RunConfig
from dsgkd.errors import UserError


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
    atomic_write(target, text)
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


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_dir(out: Path):
    """Yield a staging directory beside `out` that replaces it whole when the block succeeds."""
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    stage.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the analysis is for whoever reads the run
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{stage.name.rsplit('-', 1)[-1]}")
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="the best trial of a search as a RunConfig YAML for `dsgkd train --config`",
        description="Pick the best finished DSG-KD trial of RUN by its best epoch's validation metric and write its "
                    "full RunConfig with provenance (run, trial id, metric, value, epoch, dsgkd version, data "
                    "fingerprint, seed). Re-run it: "
                    "dsgkd train --config FILE --seeds 0,1,2 --out DIR. KD-off controls are skipped unless asked.")
    p.add_argument("run", type=Path, metavar="RUN", help="the --out directory of `dsgkd search`")
    p.add_argument("-o", "--out", type=Path, metavar="FILE", help="output YAML (default: RUN/best.yaml)")
    p.add_argument("--allow-control", action="store_true",
                   help="also consider KD-off control trials (alpha = beta = gamma = 0)")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        path, cfg, best, control = export_best(args.run, args.out, allow_control=args.allow_control)
    for w in caught:
        print(f"warning: {w.message}")
    p = cfg.provenance
    print(f"trial {best.trial_id} ({best.pair}, layer_map {cfg.distill.layer_map}, alpha {cfg.distill.alpha:g}, "
          f"beta {cfg.distill.beta:g}, T {cfg.distill.temperature:g}): {p.metric} {p.value:.4f} at epoch {p.epoch} "
          f"of {best.epochs} ({best.stopped_by}); seed {cfg.train.seed}")
    if control is not None:
        print(f"note: the KD-off control trial {control.trial_id} scored higher ({control.value:.4f}); "
              "--allow-control exports it")
    print(f"wrote {path}\nre-run: dsgkd train --config {path} --seeds 0,1,2 --out DIR")
    return 0
