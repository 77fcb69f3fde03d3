"""Where a search's per-epoch curves go besides RUN/tune's result files: TensorBoard event files in every
trial directory (always; `tensorboard --logdir RUN/tune`), and one MLflow run per trial when the user names
a tracking URI (`dsgkd search --mlflow-uri`).

Both are Ray's own logger callbacks with two changes. They step by the trial's `epoch`, not Tune's
`training_iteration`, which restarts when a trial is restored (docs/architecture.md, "Search"), so a resumed trial
continues its curve instead of drawing over it. And MLflow gets the trial's searched settings under one name each
(`pair`, `layer_map`, the space's params): Ray logs the raw config, whose pair-specific
`layer_map/<teacher>><student>` is not a valid MLflow parameter name. No checkpoint is uploaded as an artifact:
they stay in RUN/tune.

Resume: the callbacks are part of the Tuner's run config, which Tune pickles into RUN/tune/tuner.pkl, so
`--resume` logs to the same places without being told again, and a trial resumed after a kill goes on in
its own MLflow run. RUN/mlflow.json records the target, so a resume checks before Ray starts that mlflow
still imports. Neither record holds a password: it is refused in `--mlflow-uri` and read from
DSGKD_MLFLOW_PASSWORD when a connection is made (`dsgkd.search.credentials`); messages show the URI redacted.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.redact import redact_url
from dsgkd.search.credentials import TRACKING_PASSWORD_ENV, refuse_inline_password, with_password
from dsgkd.search.loggers import EpochTBXLogger
from dsgkd.storage import atomic_write_text

RECORD = "mlflow.json"
INSTALL = "pip install 'dsgkd[mlflow]'"


@dataclass(frozen=True)
class MlflowTarget:
    tracking_uri: str
    experiment: str


def mlflow_target(run_dir: Path, resume: bool, uri: str | None, experiment: str | None) -> MlflowTarget | None:
    """The MLflow store this search logs to, checked before Ray starts; on resume, the one it started with."""
    if experiment is not None and uri is None:
        raise UserError("--mlflow-experiment needs --mlflow-uri")
    if uri is not None:
        refuse_inline_password(uri, "--mlflow-uri", TRACKING_PASSWORD_ENV)
    if resume:
        stored = load_target(run_dir)
        if uri is not None and (stored is None or _anchor(uri) != stored.tracking_uri
                                or experiment not in (None, stored.experiment)):
            was = f"{redact_url(stored.tracking_uri)} (experiment {stored.experiment})" if stored else "no MLflow"
            raise UserError(f"--resume: this search started with {was}; Tune keeps the loggers a search "
                            "started with (RUN/tune/tuner.pkl), so omit --mlflow-uri/--mlflow-experiment")
        if stored:
            _import_mlflow()  # Tune unpickles the MLflow callback from tuner.pkl
        return stored
    if uri is None:
        return None
    target = MlflowTarget(_anchor(uri), experiment or run_dir.name)
    mlflow = _import_mlflow()
    try:  # reach the store now: a bad URI is one line here, not a traceback after the teacher cache is built
        client = mlflow.tracking.MlflowClient(with_password(target.tracking_uri, TRACKING_PASSWORD_ENV))
        client.get_experiment_by_name(target.experiment)
    except Exception as e:  # MLflow raises its own, SQLAlchemy's and requests' errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"--mlflow-uri {redact_url(uri)}: {redact_url(first)}") from None
    return target


def record_target(run_dir: Path, target: MlflowTarget | None) -> None:
    if target is not None:
        atomic_write_text(run_dir / RECORD, json.dumps(asdict(target), indent=1))


def load_target(run_dir: Path) -> MlflowTarget | None:
    path = run_dir / RECORD
    return MlflowTarget(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def callbacks(run_dir: Path, target: MlflowTarget | None) -> list:
    """The Tuner's loggers: TensorBoard always (Tune would add its own, stepped by training_iteration),
    MLflow when asked. Tune still adds its CSV and JSON loggers, which `dsgkd analyze` reads."""
    out: list = [EpochTBXLogger()]
    if target is not None:
        from dsgkd.search.mlflow_logger import EpochMLflowLogger  # imports mlflow (~1.5 s)

        out.append(EpochMLflowLogger(target.tracking_uri, run_dir=str(run_dir), experiment_name=target.experiment))
    return out


def _import_mlflow():
    try:
        import mlflow
    except ImportError:
        raise UserError(f"MLflow tracking needs mlflow, which is not installed: {INSTALL}") from None
    return mlflow


def _anchor(uri: str) -> str:
    """Relative local stores made absolute: the URI is pickled with the Tuner, and a resume may run elsewhere."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri.removeprefix("sqlite:///"))
    if "://" not in uri and not uri.startswith(("file:", "databricks")):
        return os.path.abspath(uri)  # a directory: MLflow's file store
    return str(uri)
