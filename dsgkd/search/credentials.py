"""Database passwords of a search's Optuna storage and MLflow store: taken from the environment, never from the
command line, and never at rest.

A URL typed on the command line is kept by the shell's history, shown by `ps` to every user of the machine and
recorded by Ray as a job's entrypoint; what dsgkd writes (RUN/study.json, RUN/mlflow.json, Tune's pickles) is
copied with the run. So the URL the user gives names the user and the host only, the password sits in
`DSGKD_STORAGE_PASSWORD` / `DSGKD_MLFLOW_PASSWORD` (or a file, `--storage-password-file`), and
`with_password` puts it into the URL only in memory, at the moment a connection is made. An MLflow tracking
server's own `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` work as MLflow documents them.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from dsgkd.errors import UserError
from dsgkd.redact import redact_url

STORAGE_PASSWORD_ENV = "DSGKD_STORAGE_PASSWORD"
TRACKING_PASSWORD_ENV = "DSGKD_MLFLOW_PASSWORD"


def refuse_inline_password(url: str, flag: str, env: str) -> str:
    """`url` unchanged when it carries no secret; a secret in it is refused, shown redacted."""
    if redact_url(url) != url:
        raise UserError(f"{flag} {redact_url(url)}: a password on the command line is kept in shell history, `ps` "
                        f"and Ray's job record; give the URL without it and set {env}")
    return url


def load_password_file(path: Path, env: str) -> None:
    """Put the password kept in `path` (its first line) into this process's environment, read where it connects."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the password file ({type(e).__name__})") from None
    if not lines or not lines[0]:
        raise UserError(f"{path}: the password file is empty")
    os.environ[env] = lines[0]


def with_password(url: str, env: str) -> str:
    """`url` with the password from `env` after its user name (`scheme://user@host` → `user:secret@host`); a URL
    without a user name, or no password set, is returned as it is. For a connection only: never print or store it."""
    password = os.environ.get(env)
    parts = urlsplit(url)
    if not password or not parts.username or parts.password is not None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))
