"""How dsgkd writes what it keeps: whole or not at all, under names derived from content.

Every writer (a run directory, an exported YAML, the analysis folder, a teacher cache, a fine-tuned
teacher, a stand-in model) writes into a hidden temp sibling and renames it into place, so a reader never
sees half of it. A writer that fails removes its temp sibling; one that is killed cannot, so the next
writer of the same target removes the temp siblings of processes of this host that are gone.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Literal


def content_key(value: Any, *, sort_keys: bool = False, length: int = 16) -> str:
    """Hex digest of a JSON-able value: the one recipe behind every cache and directory key."""
    return hashlib.sha256(json.dumps(value, sort_keys=sort_keys).encode()).hexdigest()[:length]


def _owner_tag() -> str:
    return f"{socket.gethostname()}~{os.getpid()}~"


def _temp_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{_owner_tag()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(target: Path) -> None:
    """Remove temp siblings of `target` left by killed writers of this host (other hosts on shared storage
    and live writers keep theirs)."""
    host = socket.gethostname()
    if not target.parent.is_dir():
        return
    for kind in ("partial", "old"):
        for path in target.parent.glob(f".{target.name}.{kind}-*~*~*"):
            owner_host, _, rest = path.name.removeprefix(f".{target.name}.{kind}-").partition("~")
            pid = rest.partition("~")[0]
            if owner_host == host and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike, *, exists: Literal["replace", "keep"] = "replace"):
    """Yield a temp directory beside `target` that becomes `target` when the block succeeds.

    `replace`: an existing `target` is swapped out whole. `keep`: the first writer wins (caches keyed by
    content, which concurrent trials may build at once); a later writer's result is discarded.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target)
    stage = Path(tempfile.mkdtemp(prefix=_temp_prefix(target, "partial"), dir=target.parent))
    stage.chmod(0o777 & ~_umask())  # mkdtemp makes it private; outputs are for whoever reads the run
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if exists == "keep":
        try:
            os.rename(stage, target)
        except OSError:  # another writer published the same content first
            shutil.rmtree(stage, ignore_errors=True)
        return
    old = target.with_name(f"{_temp_prefix(target, 'old')}{stage.name.rsplit('~', 1)[-1]}")
    if target.is_dir() and not target.is_symlink():
        target.rename(old)
    elif target.exists() or target.is_symlink():
        target.unlink()
    stage.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """Yield a temp sibling path to write; it replaces `path` (fsynced first) when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path, "partial"), dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file through a temp sibling and rename it into place."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
