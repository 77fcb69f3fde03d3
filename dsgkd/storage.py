"""How dsgkd writes what it keeps: whole or not at all, durable, private, under names derived from content.

Every writer (a run directory, an exported YAML, the analysis folder, a teacher cache, a fine-tuned teacher, a
stand-in model) writes into a hidden temp sibling and renames it into place, so a reader never sees half of
it. Before the rename every file and folder of the temp sibling is made owner-only (the notes' predictions,
the teacher signal computed from them and the models trained on them are clinical data; `DSGKD_GROUP_READABLE=1`
lets the group read them) and fsynced, and the parent folder is fsynced after each rename, so a power loss
leaves the old output or the new one, never a named but empty one.

A replace renames the old target to a hidden `.NAME.old-HOST~PID~X` sibling, the new one into its place, and
only then removes the old. Recovery rule: a target that is missing while an `.old` sibling of a dead writer
exists is the old output of a writer killed between the two renames; `recover` (run by every reader that asks
and by the start-of-write sweep) renames it back. A writer that fails removes its temp sibling; one that is
killed cannot, so every writer first sweeps its parent folder of the temp siblings of dead writers of this host
(`sweep_stale`), whatever their target.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Literal

GROUP_READABLE_ENV = "DSGKD_GROUP_READABLE"
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<kind>partial|old)-(?P<host>[^~]*)~(?P<pid>\d+)~")


def content_key(value: Any, *, sort_keys: bool = False, length: int = 16) -> str:
    """Hex digest of a JSON-able value: the one recipe behind every cache and directory key."""
    return hashlib.sha256(json.dumps(value, sort_keys=sort_keys).encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike) -> str:
    """A file's sha256, read in 4 MB blocks: what caches and stores record to find a damaged file later."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def group_readable() -> bool:
    return os.environ.get(GROUP_READABLE_ENV, "").strip() not in ("", "0")


def file_mode() -> int:
    return 0o640 if group_readable() else 0o600


def dir_mode() -> int:
    return 0o750 if group_readable() else 0o700


def private_umask(current: int) -> int:
    """`current` tightened so that what a process writes is owner-only (group-readable when asked): the umask
    the CLI runs under, so files written by libraries (Ray, Optuna, transformers) are private too."""
    return current | (0o027 if group_readable() else 0o077)


def make_dirs(path: str | os.PathLike) -> None:
    """`mkdir -p` whose new folders are owner-only (`dir_mode`); a file in the way raises as mkdir does."""
    path = Path(path)
    missing = []
    while not path.is_dir() and path.parent != path:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=dir_mode())
        except FileExistsError:
            if not folder.is_dir():
                raise


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a folder's entries (a rename, a new file) durable; a file system that cannot fsync a folder is
    left as it is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def seal(root: str | os.PathLike) -> None:
    """Owner-only modes on every file and folder under `root` (whoever wrote them: pandas, transformers,
    safetensors), each file's content and each folder's entries fsynced, deepest first."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            os.chmod(path, file_mode())
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for name in dirs:
            if not os.path.islink(os.path.join(folder, name)):
                os.chmod(os.path.join(folder, name), dir_mode())
        fsync_dir(folder)
    os.chmod(root, dir_mode())


def _owner_tag() -> str:
    return f"{socket.gethostname()}~{os.getpid()}~"


def _temp_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{_owner_tag()}"


def pid_alive(pid: object) -> bool:
    """Whether a process of this host with that id lives (one we may not signal lives too)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _dead_temps(folder: Path):
    """(path, kind, target name) of the temp entries in `folder` whose writer, of this host, is gone (other
    hosts on shared storage and live writers keep theirs)."""
    host = socket.gethostname()
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        m = TEMP_NAME.match(path.name)
        if m and m["host"] == host and not pid_alive(int(m["pid"])):
            yield path, m["kind"], m["target"]


def _restore(old: Path, target: Path) -> None:
    with contextlib.suppress(OSError):  # another process restored or replaced it first
        os.rename(old, target)
        fsync_dir(target.parent)


def recover(target: str | os.PathLike) -> None:
    """The recovery rule: if `target` (or the folder above it that is missing) is missing and a dead writer left
    its `.old` sibling (killed between the two renames of a replace), rename that back. Readers call it before
    they look for an output."""
    path = Path(os.path.abspath(target))
    for missing in (path, *path.parents):
        if os.path.lexists(missing):
            return
        for old, kind, name in list(_dead_temps(missing.parent)):
            if kind == "old" and name == missing.name and not os.path.lexists(missing):
                _restore(old, missing)


def sweep_stale(folder: str | os.PathLike) -> None:
    """Before writing in `folder`: restore the old output of every writer killed mid-replace (`recover`),
    then remove what dead writers of this host left there, for any target."""
    folder = Path(folder)
    for path, kind, name in list(_dead_temps(folder)):
        if kind == "old" and not os.path.lexists(folder / name):
            _restore(path, folder / name)
        else:
            _remove(path)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike, *, exists: Literal["replace", "keep"] = "replace"):
    """Yield a temp directory beside `target` that becomes `target` when the block succeeds.

    `replace`: an existing `target` is swapped out whole, never lost before the new one is durable. `keep`:
    the first writer wins (caches keyed by content, which concurrent trials may build at once); a later
    writer's result is discarded.
    """
    target = Path(target)
    make_dirs(target.parent)
    sweep_stale(target.parent)
    stage = Path(tempfile.mkdtemp(prefix=_temp_prefix(target, "partial"), dir=target.parent))
    try:
        yield stage
        seal(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if exists == "keep":
        try:
            os.rename(stage, target)
        except OSError:  # another writer published the same content first
            shutil.rmtree(stage, ignore_errors=True)
            return
        fsync_dir(target.parent)
        return
    old = target.with_name(f"{_temp_prefix(target, 'old')}{stage.name.rsplit('~', 1)[-1]}")
    replacing = os.path.lexists(target)
    try:
        if replacing:
            os.rename(target, old)
            fsync_dir(target.parent)
        os.rename(stage, target)
    except BaseException:  # the old output goes back in place; the new one is dropped
        if replacing and not os.path.lexists(target):
            _restore(old, target)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    if replacing:
        _remove(old)
        fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temp sibling path to write; it replaces `path` (owner-only, fsynced, and its folder after the
    rename) when the block succeeds."""
    path = Path(path)
    make_dirs(path.parent)
    sweep_stale(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path, "partial"), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file through a temp sibling and rename it into place."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
