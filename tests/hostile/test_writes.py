"""Hostile writes: a writer SIGKILLed at any step of a replace leaves the old output or the new one whole; what
dsgkd writes is owner-only under a permissive umask; a teacher cache with a zeroed page is caught before a trial
reads it; a full, read-only or forbidden disk ends in one line (exit 2); `--resume` with nothing to resume fails
before Ray starts."""
import errno
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsgkd import storage
from dsgkd.cli import main
from dsgkd.cli.main import storage_error

ROOT = Path(__file__).resolve().parents[2]
MARKER = "PHI_MARKER_7Q"
PARTS = 5

CHILD = r"""
import os, shutil, signal, sys
from pathlib import Path
from dsgkd import storage

target, step, parts = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
calls = {"rename": 0, "fsync": 0}
real_rename, real_fsync, real_rmtree = os.rename, os.fsync, shutil.rmtree

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def rename(a, b):
    calls["rename"] += 1
    if step == f"before rename {calls['rename']}":
        die()
    real_rename(a, b)
    if step == f"after rename {calls['rename']}":
        die()

def fsync(fd):
    calls["fsync"] += 1
    if step == "sealing" and calls["fsync"] == 3:
        die()
    real_fsync(fd)

def rmtree(path, *args, **kwargs):
    if step == "removing the old copy" and ".old-" in str(path):
        os.unlink(sorted(Path(path).glob("*"))[0])
        die()
    real_rmtree(path, *args, **kwargs)

os.rename, os.fsync, shutil.rmtree = rename, fsync, rmtree
with storage.staged_dir(target) as stage:
    for i in range(parts):
        (stage / f"part{i}.txt").write_text("new")
        if step == "writing" and i == 2:
            die()
"""


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def contents(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.iterdir())]


@pytest.mark.parametrize("step, survivor", [
    ("writing", "old"), ("sealing", "old"), ("before rename 1", "old"), ("after rename 1", "old"),
    ("after rename 2", "new"), ("removing the old copy", "new"),
])
def test_a_writer_killed_at_any_step_of_a_replace_leaves_one_whole_copy(tmp_path, step, survivor):
    target = tmp_path / "run"
    target.mkdir()
    for i in range(PARTS):
        (target / f"part{i}.txt").write_text("old")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(target), step, str(PARTS)], env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    storage.recover(target)  # what a reader does first (the recovery rule)
    assert contents(target) == [survivor] * PARTS
    storage.atomic_write_text(tmp_path / "other.txt", "x")  # any writer of the folder sweeps the leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "run"]
    assert contents(target) == [survivor] * PARTS


def test_a_writer_of_another_target_restores_an_old_copy_and_sweeps_dead_partials(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = socket.gethostname()
    old = tmp_path / f".model.old-{host}~{dead}~abc"
    old.mkdir()
    (old / "weights").write_text("kept")
    partial = tmp_path / f".preds.csv.partial-{host}~{dead}~xyz"
    partial.write_text(f"{MARKER} half a file")
    with storage.staged_dir(tmp_path / "analysis") as stage:
        (stage / "a.md").write_text("a")
    assert (tmp_path / "model" / "weights").read_text() == "kept" and not partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis", "model"]


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
            if not p.is_symlink()}


@pytest.fixture
def permissive_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.parametrize("group, file_mode, dir_mode", [("", 0o600, 0o700), ("1", 0o640, 0o750)])
def test_staged_and_atomic_writes_are_owner_only_whatever_wrote_them(tmp_path, monkeypatch, permissive_umask,
                                                                     group, file_mode, dir_mode):
    monkeypatch.setenv(storage.GROUP_READABLE_ENV, group)
    with storage.staged_dir(tmp_path / "runs" / "one") as stage:
        (stage / "student").mkdir(mode=0o777)
        fd = os.open(stage / "student" / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        (stage / "predictions.csv").write_text("row,prob\n")
    storage.atomic_write_text(tmp_path / "runs" / "best.yaml", "a: 1\n")
    found = modes(tmp_path / "runs")
    assert found == {".": dir_mode, "one": dir_mode, "one/student": dir_mode, "one/student/model.safetensors":
                     file_mode, "one/predictions.csv": file_mode, "best.yaml": file_mode}


@pytest.fixture(scope="module")
def trained(notes_csv, tmp_path_factory):
    """A tiny run trained, evaluated and used to predict under umask 0: every path any of them wrote."""
    root = tmp_path_factory.mktemp("private")
    previous = os.umask(0)
    try:
        assert main(["train", "--data", str(notes_csv), "--text-col", "ER_DHX", "--label-col", "LABEL",
                     "--teacher", "kmbert-tiny", "--student", "kobert-tiny", "--layer-map", "uniform", "--epochs",
                     "1", "--batch-size", "16", "--max-length", "48", "--n-bootstrap", "10",
                     "--out", str(root / "runs" / "first")]) == 0
        assert main(["evaluate", "--model", str(root / "runs" / "first"), "--data", str(notes_csv),
                     "--n-bootstrap", "10", "--json", str(root / "eval" / "eval.json"),
                     "--plots", str(root / "eval" / "plots")]) == 0
        assert main(["predict", "--model", str(root / "runs" / "first"), "--data", str(notes_csv),
                     "--out", str(root / "preds" / "preds.csv")]) == 0
    finally:
        os.umask(previous)
    return root


def test_train_evaluate_and_predict_write_owner_only_under_a_permissive_umask(trained):
    found = modes(trained)
    written = {p: m for p, m in found.items() if p != "."}
    assert "runs/first/student/model.safetensors" in written and "eval/plots/roc.png" in written
    assert "preds/preds.csv" in written and "runs/first/student/tokenizer.json" in written
    loose = {p: oct(m) for p, m in written.items() if m & 0o077}
    assert not loose


def test_group_readable_when_asked(trained, notes_csv, monkeypatch, permissive_umask):
    monkeypatch.setenv(storage.GROUP_READABLE_ENV, "1")
    out = trained / "shared" / "preds.csv"
    assert main(["predict", "--model", str(trained / "runs" / "first"), "--data", str(notes_csv),
                 "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and stat.S_IMODE(out.parent.stat().st_mode) == 0o750


@pytest.fixture(scope="module")
def teacher():
    from dsgkd.models.load import load_classifier

    tok, model = load_classifier("kmbert-tiny", output_attentions=True)
    return tok, model.eval()


def build_cache(teacher, out):
    from dsgkd.core.features import encode_notes
    from dsgkd.core.teacher.cache import write_cache

    tok, model = teacher
    texts = ["3일전부터 fever, vomiting x3, r/o AGE", "rash 전신, itching 호소", "seizure 1회 5분"] * 8
    notes = encode_notes(texts, None, None, tok, selector="latin", max_terms=4, max_length=24)
    return write_cache(model, tok, {"train": notes}, out, key="k", layers=[0, 1, 2], attn_layers=[1, 2], logits=False,
                       batch_size=4)


def test_a_cache_with_a_zeroed_page_is_dropped_before_a_trial_reads_it_and_rebuilt(teacher, tmp_path, capsys):
    import json

    from dsgkd.core.teacher.cache import verify_cache
    from dsgkd.pipeline.teacher_cache import INDEX, drop_damaged_caches

    run = tmp_path / "run"
    cache = build_cache(teacher, run / "teacher_cache")
    (run / "teacher_cache" / INDEX).write_text(json.dumps({"g/pretrained": cache.name}))
    pooled = cache / "train.pooled.npy"
    good = pooled.read_bytes()
    page = 4096 if len(good) >= 8192 else 128
    assert any(good[page:2 * page])  # the page held signal
    with open(pooled, "r+b") as f:  # a power loss: the size is right, a page is zeros
        f.seek(page)
        f.write(bytes(min(page, len(good) - page)))
    assert pooled.stat().st_size == len(good) and not verify_cache(cache)
    assert drop_damaged_caches(run) == ["g/pretrained"]
    assert not cache.exists() and json.loads((run / "teacher_cache" / INDEX).read_text()) == {}
    assert "damaged (size or checksum); rebuilding it" in capsys.readouterr().out
    assert build_cache(teacher, run / "teacher_cache") == cache and pooled.read_bytes() == good


def test_memmaps_are_allocated_on_disk_so_a_full_disk_is_enospc_not_sigbus(teacher, tmp_path, monkeypatch):
    from dsgkd.core.teacher import cache as cache_module

    sparse = tmp_path / "a.npy"
    np.lib.format.open_memmap(sparse, mode="w+", dtype=np.float16, shape=(4, 1 << 18))
    assert sparse.stat().st_blocks * 512 < sparse.stat().st_size  # numpy leaves it sparse
    cache_module._reserve(sparse)
    assert sparse.stat().st_blocks * 512 >= sparse.stat().st_size

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError) as e:
        build_cache(teacher, tmp_path / "caches")
    assert e.value.errno == errno.ENOSPC and list((tmp_path / "caches").iterdir()) == []


@pytest.mark.parametrize("code, needle", [
    (errno.ENOSPC, "no space left on the disk"), (errno.EDQUOT, "disk quota exceeded"),
    (errno.EROFS, "the file system is read-only"), (errno.EACCES, "permission denied"),
])
def test_a_disk_that_refuses_a_write_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, code, needle):
    def refuse(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", refuse)
    out = tmp_path / "data" / "notes.csv"
    assert main(["synth", "--n", "20", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and MARKER not in err
    assert err.startswith("dsgkd synth: error: " + needle), err
    assert list((tmp_path / "data").iterdir()) == []  # no file, no temp sibling


def test_a_storage_error_raised_in_a_ray_task_is_one_line_and_a_bug_keeps_its_traceback():
    class TaskError(OSError):  # how Ray re-raises a task's OSError: a subclass carrying `cause`
        cause = OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/runs/a-file/x")

    assert storage_error(TaskError()) == ("a part of the path is a file, not a folder (/runs/a-file/x); the output "
                                          "was not written (free space, or write somewhere writable)")
    assert storage_error(OSError(errno.EBADF, "bad file descriptor")) is None


def test_resume_with_an_empty_tune_folder_fails_in_one_line_before_ray_starts(tmp_path, capsys):
    import ray

    run = tmp_path / "run"
    (run / "tune").mkdir(parents=True)
    (run / "space.yaml").write_text("not read\n")
    before = hashlib.sha256((run / "space.yaml").read_bytes()).hexdigest()
    assert main(["search", "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no search to resume" in err and "remove RUN/tune" in err, err
    assert not ray.is_initialized()
    assert hashlib.sha256((run / "space.yaml").read_bytes()).hexdigest() == before
