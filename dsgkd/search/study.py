"""A search's Optuna study: one per run, named once, recorded in the run, opened without its password at rest.

The name is the run's basename plus a random suffix made when the run is created, and RUN/study.json records
it with the storage URL (as the user gave it: no password), so two runs with the same basename on a shared
storage (a cluster's default SQLite file or a PostgreSQL server) get two studies instead of mixing their trials,
and `dsgkd analyze` finds the study without being told. A new run refuses a study name that already exists.

The storage object is `EnvPasswordRDBStorage`: Tune pickles OptunaSearch, storage included, into
RUN/tune/tuner.pkl and RUN/tune/searcher-state-*.pkl, and Optuna's RDBStorage pickles its URL. This one
pickles the URL the user gave and puts the password back from the environment when it is unpickled
(`--resume`), so the run's files never hold it.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna

from dsgkd.errors import UserError
from dsgkd.redact import redact_url
from dsgkd.search.credentials import STORAGE_PASSWORD_ENV, with_password
from dsgkd.storage import atomic_write_text

RECORD = "study.json"


@dataclass(frozen=True)
class StudyRecord:
    study_name: str
    storage: str | None     # the URL without its password; None: RUN/optuna.db

    def url(self, run_dir: Path) -> str:
        return self.storage or default_url(run_dir)


def default_url(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / 'optuna.db'}"


class EnvPasswordRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage on `public_url` plus the password in DSGKD_STORAGE_PASSWORD, pickled without it."""

    def __init__(self, public_url: str):
        self.public_url = public_url
        super().__init__(with_password(public_url, STORAGE_PASSWORD_ENV))

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "url": self.public_url}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__({**state, "url": with_password(state["public_url"], STORAGE_PASSWORD_ENV)})


def open_storage(url: str) -> EnvPasswordRDBStorage:
    """The storage, reached now: a bad URL or a wrong password is one line (redacted), not a traceback."""
    try:
        return EnvPasswordRDBStorage(url)
    except Exception as e:  # SQLAlchemy's and the database driver's errors, ImportError for a missing driver
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"Optuna storage {redact_url(url)}: {redact_url(first)}") from None


def new_study(run_dir: Path, storage: str | None) -> tuple[StudyRecord, EnvPasswordRDBStorage]:
    """A fresh study name for a new run on `storage` (None: RUN/optuna.db), refused if it exists there already."""
    record = StudyRecord(f"{run_dir.name}-{secrets.token_hex(4)}", storage)
    opened = open_storage(record.url(run_dir))
    if record.study_name in optuna.study.get_all_study_names(opened):
        raise UserError(f"Optuna storage {redact_url(record.url(run_dir))} already holds a study "
                        f"{record.study_name!r} of another run; a run opens only its own study")
    return record, opened


def write_record(run_dir: Path, record: StudyRecord) -> None:
    atomic_write_text(run_dir / RECORD, json.dumps(asdict(record), indent=1))


def read_record(run_dir: Path) -> StudyRecord | None:
    """RUN/study.json; None for a run made before it existed (its study is named after the run's basename)."""
    path = run_dir / RECORD
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        record = StudyRecord(str(raw["study_name"]), None if raw.get("storage") is None else str(raw["storage"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path}: not a study record written by `dsgkd search`") from None
    if redact_url(record.storage or "") != (record.storage or ""):
        raise UserError(f"{path}: the recorded storage URL holds a password; remove it and set {STORAGE_PASSWORD_ENV}")
    return record
