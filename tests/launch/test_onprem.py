"""launch/onprem.yaml, checked offline: Ray's own validation and bootstrap of an on-premise ("local" provider)
config, the head's resources on its `ray start` line (the local provider detects every node's resources
itself), the dashboard binding, token authentication, and the setup commands it shares with cluster.yaml.
Nothing here needs the hospital's servers."""
import copy
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ray_cluster_config import COMMAND_LISTS, validated

ROOT = Path(__file__).resolve().parents[2]
ONPREM = ROOT / "launch" / "onprem.yaml"


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(ONPREM.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prepared(raw):
    return validated(raw)


def _ray_start(cfg, key):
    [line] = [c for c in cfg[key] if "ray start" in c]
    return line


def test_ray_up_validates_and_bootstraps_it(raw, monkeypatch, tmp_path):
    """`ray up`'s own first step (commands._bootstrap_config: prepare, validate, provider bootstrap)."""
    import tempfile

    from ray.autoscaler._private.commands import _bootstrap_config

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))  # where it caches the resolved config
    cfg = _bootstrap_config(copy.deepcopy(raw), no_config_cache=True)
    assert cfg["provider"]["type"] == "local"
    [node_type] = cfg["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(raw["provider"]["worker_ips"])


def test_the_servers_and_the_account_are_placeholders_to_fill_in(raw):
    p = raw["provider"]
    assert "REPLACE" in p["head_ip"] and p["worker_ips"] and all("REPLACE" in ip for ip in p["worker_ips"])
    assert p["head_ip"] not in p["worker_ips"]
    assert "REPLACE" in raw["auth"]["ssh_user"] and raw["auth"]["ssh_private_key"]


def test_head_offers_trial_drivers_and_no_cpu_or_gpu(prepared):
    head = _ray_start(prepared, "head_start_ray_commands")
    args = shlex.split(head.split("ray start", 1)[1])
    assert "--head" in args and "--num-cpus=0" in args and "--num-gpus=0" in args
    [resources] = [a.removeprefix("--resources=") for a in args if a.startswith("--resources=")]
    assert json.loads(resources)["trial_driver"] >= 1
    worker = _ray_start(prepared, "worker_start_ray_commands")
    assert "--num-cpus" not in worker and "trial_driver" not in worker  # workers advertise what they have


def test_dashboard_stays_on_the_heads_localhost(prepared):
    assert "0.0.0.0" not in ONPREM.read_text(encoding="utf-8")
    head = " ".join(prepared["head_start_ray_commands"])
    assert re.findall(r"--dashboard-host[= ](\S+)", head) == ["127.0.0.1"]
    everything = " ".join(c for key in COMMAND_LISTS for c in prepared.get(key, []))
    assert "0.0.0.0" not in everything and "--dashboard-host=::" not in everything


def test_token_auth_on_every_server(prepared):
    assert prepared["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        line = _ray_start(prepared, key)
        assert "RAY_AUTH_MODE=token ray start" in line and "test -s ~/.ray/auth_token" in line


def test_setup_is_cluster_yamls_but_for_the_shared_mount(raw, prepared):
    aws = yaml.safe_load((ROOT / "cluster.yaml").read_text(encoding="utf-8"))
    assert raw["setup_commands"][1:] == aws["setup_commands"][1:]  # venv, token mode, torch, Ray, the package
    assert raw["worker_setup_commands"] == aws["worker_setup_commands"]  # fails without a CUDA GPU
    assert "mkdir -p ~/dsgkd-optuna" in prepared["head_setup_commands"]
    assert not any("boto3" in c for c in prepared["head_setup_commands"])  # no cloud API on-prem
    for key in ("file_mounts", "rsync_filter", "rsync_exclude"):
        assert raw[key] == aws[key]
    assert "/mnt/shared" in raw["setup_commands"][0]


bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@bash
def test_an_unset_nfs_export_stops_setup_before_it_touches_the_server(raw):
    r = subprocess.run(["bash", "-c", raw["setup_commands"][0]], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "set DSGKD_NFS" in r.stderr and r.stdout == ""
