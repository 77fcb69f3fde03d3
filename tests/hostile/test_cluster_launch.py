"""Hostile inputs to the cluster launch tools (launch/submit.sh, launch/with_storage_password.sh,
launch/aws_security_group.py): each is refused with exit 2 and one line on stderr, no traceback, its input files
byte-identical, and no password or marker string in what it prints. (Named apart from tests/launch/test_cluster.py:
pytest's default import mode needs distinct basenames.)"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "launch" / "submit.sh"
WRAPPER = ROOT / "launch" / "with_storage_password.sh"
SG_SCRIPT = ROOT / "launch" / "aws_security_group.py"
SPACE = ROOT / "search_spaces" / "demo.yaml"
MARKER = "PHI_MARKER_7Q"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def refused(r: subprocess.CompletedProcess, inputs: dict[Path, bytes]) -> str:
    """The checks every hostile case shares; returns the one line for the case's own check."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert MARKER not in r.stderr + r.stdout
    for path, content in inputs.items():
        assert path.read_bytes() == content, path
    return lines[0]


def submit(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict[Path, bytes]]:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    token = home / ".ray" / "auth_token"
    token.write_text("t")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DSGKD_"))}
    base.update(HOME=str(home), DSGKD_DRY_RUN="1", **env)
    inputs = {SPACE: SPACE.read_bytes(), token: token.read_bytes()}
    r = subprocess.run(["bash", str(SUBMIT), str(SPACE), *args], capture_output=True, text=True, env=base,
                       cwd=tmp_path, timeout=60)
    return r, inputs


@pytest.mark.parametrize("how", ["env", "arg=", "arg", "query", "mlflow", "set"])
def test_submit_refuses_a_password_on_the_jobs_command_line(tmp_path, how):
    url = f"postgresql://dsgkd:{MARKER}@db.internal:5432/optuna"
    cases = {"env": ((), {"DSGKD_OPTUNA_STORAGE": url}),
             "arg=": ((f"--optuna-storage={url}",), {}),
             "arg": (("--optuna-storage", url), {}),
             "query": (("--optuna-storage", f"postgresql://dsgkd@db/optuna?sslmode=require&PassWord={MARKER}"), {}),
             "mlflow": (("--mlflow-uri", f"https://me:{MARKER}@mlflow.internal/"), {}),
             "set": (("--set", f"tracking.uri=https://me:{MARKER}@mlflow.internal/"), {})}
    args, env = cases[how]
    line = refused(*submit(tmp_path, *args, RAY_AUTH_TOKEN="t", **env))
    assert ":***@" in line or "?***" in line
    assert "DSGKD_STORAGE_PASSWORD_FILE" in line


def test_submit_refuses_a_password_it_would_have_to_send(tmp_path):
    line = refused(*submit(tmp_path, DSGKD_STORAGE_PASSWORD=MARKER,
                           DSGKD_OPTUNA_STORAGE="postgresql://dsgkd@db/optuna"))
    assert "DSGKD_STORAGE_PASSWORD_FILE" in line


def test_submit_refuses_a_relative_password_file(tmp_path):
    line = refused(*submit(tmp_path, DSGKD_STORAGE_PASSWORD=MARKER, DSGKD_STORAGE_PASSWORD_FILE="pw"))
    assert "absolute" in line


def wrapper(password_file: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(WRAPPER), str(password_file), *extra, "env"], capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_the_head_refuses_a_password_file_others_can_read(tmp_path, mode):
    pw = tmp_path / "pw"
    pw.write_text(MARKER + "\n")
    pw.chmod(mode)
    line = refused(wrapper(pw), {pw: pw.read_bytes()})
    assert "chmod 600" in line
    assert (pw.stat().st_mode & 0o777) == mode  # refused, not "fixed" behind the user's back


def test_the_head_refuses_an_empty_password_file(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("\n")
    pw.chmod(0o600)
    assert "empty" in refused(wrapper(pw), {pw: pw.read_bytes()})


def test_the_head_refuses_a_missing_or_odd_password_file(tmp_path):
    assert "no such file" in refused(wrapper(tmp_path / "absent"), {})
    assert "no such file" in refused(wrapper(tmp_path), {})  # a directory


def test_the_head_refuses_a_call_without_a_command(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(MARKER)
    pw.chmod(0o600)
    r = subprocess.run(["bash", str(WRAPPER), str(pw)], capture_output=True, text=True, timeout=30)
    assert "usage" in refused(r, {pw: pw.read_bytes()})


def test_the_head_hands_the_password_to_the_command_alone(tmp_path):
    """The good case beside the hostile ones: the first line, without its newline, in DSGKD_STORAGE_PASSWORD."""
    pw = tmp_path / "pw"
    pw.write_text(MARKER + "\r\nsecond line\n")
    pw.chmod(0o600)
    r = wrapper(pw)
    assert r.returncode == 0 and f"DSGKD_STORAGE_PASSWORD={MARKER}\n" in r.stdout and r.stderr == ""


def cluster_yaml(tmp_path: Path, cidr: str | None = None, text: str | None = None) -> Path:
    path = tmp_path / "cluster.yaml"
    if text is None:
        cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text(encoding="utf-8"))
        if cidr is not None:
            cfg["provider"]["security_group"]["IpPermissions"][0]["IpRanges"][0]["CidrIp"] = cidr
        text = yaml.safe_dump(cfg)
    path.write_text(text)
    return path


def security_group(path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, str(SG_SCRIPT), str(path)], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("cidr", [None, "0.0.0.0/0", f"{MARKER}/24", "10.1.2.3/8", "10.0.0.0/40", "::/0"],
                         ids=["replace-me", "world", "marker", "host-bits", "prefix", "ipv6-world"])
def test_the_security_group_script_refuses_a_cidr_before_it_touches_aws(tmp_path, cidr):
    path = cluster_yaml(tmp_path, cidr)
    line = refused(security_group(path), {path: path.read_bytes()})
    assert "CidrIp" in line


@pytest.mark.parametrize("text", ["provider: [1, 2\n", f"{MARKER}\n", "cluster_name: x\n",
                                  "provider: {type: aws, region: us-west-2}\n"],
                         ids=["bad-yaml", "not-a-mapping", "no-provider", "no-security-group"])
def test_the_security_group_script_refuses_a_file_that_is_not_its_config(tmp_path, text):
    path = cluster_yaml(tmp_path, text=text)
    refused(security_group(path), {path: path.read_bytes()})


def test_the_security_group_script_refuses_a_missing_config(tmp_path):
    refused(security_group(tmp_path / "absent.yaml"), {})
