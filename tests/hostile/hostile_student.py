"""A student directory as `dsgkd train` leaves one, built in seconds from the suite's tiny BERT, and the checks
every hostile-input case makes: exit 2, one line on stderr, no traceback, inputs unchanged, no marker shown."""
import hashlib
import json
import re
import shutil
from pathlib import Path

from dsgkd.cli import main

MARKER = "PHI_MARKER_7Q"
# what Ray's log monitor forwards from another test's worker, late (a trial actor's SIGTERM on shutdown): not ours
RAY_WORKER_LINE = re.compile(r"^(\x1b\[\d+m)?\(\S+ pid=\d+(, ip=\S+)?\)")


def make_student(local_bert_dir: Path, dest: Path, **meta) -> Path:
    """A copy of the tiny BERT with the `dsgkd.json` a trained student has (`meta` overrides its fields)."""
    shutil.copytree(local_bert_dir, dest)
    fields = {"format": 2, "dsgkd_version": "0", "temperature": 1.5, "threshold": 0.5, "threshold_rule": "f1",
              "label_names": ["0", "1"], "max_length": 64, "batch_size": 8, "text_col": "ER_DHX",
              "label_col": "LABEL", "encoding": "utf-8", "classes": None, **meta}
    (dest / "dsgkd.json").write_text(json.dumps(fields))
    return dest


def digests(*paths: Path) -> dict[Path, str]:
    """Each file's content hash, every file under a folder included."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [])]
    return {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def refused(argv: list[str], capsys, inputs: list[Path]) -> str:
    """Run `dsgkd argv`, which must be refused as bad input; returns its one stderr line."""
    before = digests(*inputs)
    assert main(argv) == 2
    err = "\n".join(line for line in capsys.readouterr().err.strip().splitlines()
                    if not RAY_WORKER_LINE.match(line)).strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"dsgkd {argv[0]}: error: "), err
    assert MARKER not in err, err
    assert digests(*inputs) == before
    return err
