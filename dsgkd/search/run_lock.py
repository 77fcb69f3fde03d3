"""One writer per run folder: `dsgkd search` (and `--resume`) holds RUN/.dsgkd.lock for its whole run, and
`analyze` and `export` hold RUN/.dsgkd-report.lock while they write RUN/analysis/ and the exported YAML. The
two are apart because the search never writes what analyze and export write, and reading a live search is
what analyze is for; two searches, or two analyses, on one folder are refused.

The checks a search makes on its `--out` come minutes before Tune creates RUN/tune/, so without a lock two
searches started on one folder both pass them and interleave their trials. The lock is an `fcntl` lock: the
kernel (or the NFS lock manager) drops it when its holder dies, so a killed search leaves no stale lock behind.
The file records the holder's command, host and pid for the message a refused writer prints; where the file
system cannot lock, that record decides (a live process of this host keeps it, a dead one does not). The file
is removed on release; a writer that locked a file a releasing holder had just removed tries again on the new one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.storage import pid_alive

LOCK_FILE = ".dsgkd.lock"
REPORT_LOCK_FILE = ".dsgkd-report.lock"
_NO_LOCKING = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, command: str, name: str = LOCK_FILE):
    """Hold RUN's lock `name` for the block; held by another live writer: a UserError. RUN is created if missing,
    and removed again if the block fails leaving it empty (a refused search leaves no folder behind)."""
    path = Path(run_dir) / name
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = _acquire(path, command)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        raise
    try:
        yield
    except BaseException:
        _release(path, fd)
        if created:
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only while empty
        raise
    _release(path, fd)


def _release(path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(fd)


def _acquire(path: Path, command: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            locked = _try_lock(fd, path)
            if not locked:
                raise UserError(f"{path.parent}: in use by {_holder(path)}; wait for it to end or choose another "
                                "run folder")
            if _same_file(fd, path):
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps({"command": command, "host": socket.gethostname(),
                                         "pid": os.getpid()}).encode())
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed this file as we locked it: lock the one there now


def _try_lock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno not in _NO_LOCKING:
            raise
    holder = _record(path)  # a file system without locks: the record decides
    return not (holder.get("host") == socket.gethostname() and pid_alive(holder.get("pid")))


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _record(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _holder(path: Path) -> str:
    holder = _record(path)
    command, host, pid = holder.get("command"), holder.get("host"), holder.get("pid")
    if not (isinstance(command, str) and isinstance(host, str) and isinstance(pid, int)):
        return "another dsgkd process"
    return f"`dsgkd {command[:20]}` (pid {pid} on {host[:64]})"
