"""Atomic outputs: a target appears whole or not at all, and a killed writer's leftovers are swept."""
import os
import socket
import subprocess
import sys

import pytest

from dsgkd.storage import atomic_write_text, content_key, staged_dir


def siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_staged_dir_replaces_the_target_whole(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with staged_dir(target) as stage:
        (stage / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()  # nothing visible until the block ends
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"] and siblings(target) == []


def test_a_failing_writer_leaves_the_target_untouched_and_no_temp(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(RuntimeError), staged_dir(target) as stage:
        (stage / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert not target.exists() and siblings(target) == []


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_writer_sweeps_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "cache"
    host = socket.gethostname()
    stale = tmp_path / f".cache.partial-{host}~{dead_pid()}~abc"
    stale.mkdir()
    other_host = tmp_path / f".cache.partial-elsewhere~{dead_pid()}~abc"
    other_host.mkdir()
    live = tmp_path / f".cache.partial-{host}~{os.getppid()}~abc"
    live.mkdir()
    with staged_dir(target, exists="keep") as stage:
        (stage / "meta.json").write_text("{}")
    assert not stale.exists() and other_host.exists() and live.exists()


def test_keep_lets_the_first_writer_win(tmp_path):
    target = tmp_path / "cache"
    with staged_dir(target, exists="keep") as first:
        (first / "v").write_text("1")
    with staged_dir(target, exists="keep") as second:
        (second / "v").write_text("2")
    assert (target / "v").read_text() == "1" and siblings(target) == []


def test_atomic_write_text(tmp_path):
    path = tmp_path / "best.yaml"
    atomic_write_text(path, "a: 1\n")
    atomic_write_text(path, "a: 2\n")
    assert path.read_text() == "a: 2\n" and siblings(path) == []


def test_content_key_is_the_sha256_of_the_json():
    import hashlib
    import json

    value = {"b": 1, "a": [1, 2]}
    assert content_key(value) == hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]
    assert content_key(value, sort_keys=True) == content_key({"a": [1, 2], "b": 1}, sort_keys=True)


def test_a_failing_file_writer_keeps_the_old_file(tmp_path):
    from dsgkd.storage import atomic_file

    path = tmp_path / "notes.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "old" and siblings(path) == []


def test_a_replace_whose_rename_fails_puts_the_old_output_back(tmp_path, monkeypatch):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_rename = os.rename

    def rename(src, dst):
        if ".partial-" in str(src):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError), staged_dir(target) as stage:
        (stage / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.txt"] and siblings(target) == []
