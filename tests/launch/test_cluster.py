"""cluster.yaml and launch/submit.sh, checked offline: Ray's own cluster-config validator (what `ray up`
runs before it touches the cloud), the head/worker resource layout, the dashboard binding, token
authentication, the setup commands, and the job that submit.sh composes. Nothing here needs AWS or a
running Ray cluster."""
import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray_cluster_config import COMMAND_LISTS, validated

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster.yaml"
SUBMIT = ROOT / "launch" / "submit.sh"

bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(CLUSTER.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def prepared(raw):
    return validated(raw)


def _head(cfg):
    return cfg["available_node_types"][cfg["head_node_type"]]


def _gpu_types(cfg):
    return {name: t for name, t in cfg["available_node_types"].items()
            if name != cfg["head_node_type"] and t.get("resources", {}).get("GPU", 0) >= 1}


def test_passes_rays_validator(prepared):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(yaml.safe_load(open(CLUSTER))))  # the call `ray up` makes
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_aws_autodetected_resources_keep_the_head_cpu_free(prepared, monkeypatch):
    """`ray up` on AWS next merges the instance types' detected CPUs/GPUs into the node types (the declared
    values win) and validates again; stub the EC2 catalogue and run that step too."""
    pytest.importorskip("boto3")
    from ray.autoscaler._private.aws import node_provider as aws
    from ray.autoscaler._private.util import validate_config

    def instance(kind, cpus, mib, gpus=0):
        d = {"InstanceType": kind, "VCpuInfo": {"DefaultVCpus": cpus}, "MemoryInfo": {"SizeInMiB": mib}}
        if gpus:
            d["GpuInfo"] = {"Gpus": [{"Name": "A10G", "Manufacturer": "NVIDIA", "Count": gpus,
                                      "MemoryInfo": {"SizeInMiB": 24576}}]}
        return d

    catalogue = [instance("m5.2xlarge", 8, 32768), instance("g5.xlarge", 4, 16384, 1),
                 instance("g5.2xlarge", 8, 32768, 1), instance("m5.xlarge", 4, 16384)]
    monkeypatch.setattr(aws, "list_ec2_instances", lambda region, creds=None: catalogue)
    filled = aws.AWSNodeProvider.fillout_available_node_types_resources(copy.deepcopy(prepared))
    validate_config(filled)
    assert _head(filled)["resources"]["CPU"] == 0
    assert _head(filled)["resources"]["trial_driver"] >= 1
    assert all(t["resources"]["GPU"] >= 1 for t in _gpu_types(filled).values())
    assert filled["available_node_types"]["gpu_worker"]["resources"].get("accelerator_type:A10G") == 1  # detected


def test_head_advertises_trial_driver_and_no_cpu(raw, prepared):
    for cfg in (raw, prepared):
        res = _head(cfg)["resources"]
        assert res["CPU"] == 0, "a Train worker must never be placed on the head"
        assert res["trial_driver"] >= 1
        assert res.get("GPU", 0) == 0
    workers = [t for n, t in raw["available_node_types"].items() if n != raw["head_node_type"]]
    assert all("trial_driver" not in t.get("resources", {}) for t in workers), "trial drivers run on the head"


def test_gpu_worker_type_autoscales(raw):
    gpu = _gpu_types(raw)
    assert gpu, "a worker node type with GPU resources"
    for t in gpu.values():
        assert t["min_workers"] == 0 and 1 <= t["max_workers"] <= raw["max_workers"]
        assert t["resources"]["CPU"] >= 1
    # one trial of search_spaces/pairs.yaml fills one 1-GPU node: as many trial drivers as GPU nodes
    assert _head(raw)["resources"]["trial_driver"] == sum(t["max_workers"] for t in gpu.values())
    assert 1 <= raw["idle_timeout_minutes"] <= 60


def test_dashboard_stays_on_the_heads_localhost(prepared):
    assert "0.0.0.0" not in CLUSTER.read_text(encoding="utf-8")
    head_cmds = " ".join(prepared["head_start_ray_commands"])  # after Ray's defaults were merged in
    hosts = re.findall(r"--dashboard-host[= ](\S+)", head_cmds)
    assert hosts == ["127.0.0.1"], hosts
    everything = " ".join(c for key in COMMAND_LISTS for c in prepared.get(key, []))
    assert "0.0.0.0" not in everything and "--dashboard-host=::" not in everything
    assert "--head" in head_cmds and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_cmds


def test_token_auth_on_every_node(prepared):
    mounts = prepared["file_mounts"]
    assert mounts.get("~/.ray/auth_token") == "~/.ray/auth_token"  # laptop -> head -> each worker
    starts = [c for key in ("head_start_ray_commands", "worker_start_ray_commands")
              for c in prepared[key] if "ray start" in c]
    assert len(starts) == 2
    for c in starts:
        assert "RAY_AUTH_MODE=token ray start" in c  # a worker does not turn token mode on by itself
        assert "test -s ~/.ray/auth_token" in c


def test_setup_installs_cuda_torch_then_the_package(prepared):
    import ray

    for key in ("head_setup_commands", "worker_setup_commands"):  # setup_commands are merged into both
        cmds = prepared[key]
        torch_at = next(i for i, c in enumerate(cmds) if re.search(r"pip install .*torch==2\.13\.0", c))
        pkg_at = next(i for i, c in enumerate(cmds) if re.search(r"pip install .*-e ~/dsgkd\b", c))
        assert torch_at < pkg_at
        assert any(f"ray[default,tune,train]=={ray.__version__}" in c for c in cmds), "cluster Ray == client Ray"
    assert prepared["file_mounts"]["~/dsgkd"] == "."  # the package dir that `pip install -e` reads
    assert any("boto3" in c for c in prepared["head_setup_commands"]), "the head's autoscaler needs boto3"
    assert any("torch.cuda.is_available()" in c for c in prepared["worker_setup_commands"])
    assert ".gitignore" in prepared["rsync_filter"]


def test_shared_storage_is_mounted_on_every_node(raw):
    assert any("/mnt/shared" in c and "mount" in c for c in raw["setup_commands"])


@bash
@pytest.mark.parametrize("path", [CLUSTER, ROOT / "launch" / "onprem.yaml"], ids=["aws", "onprem"])
def test_every_node_command_is_valid_bash(path):
    prepared = validated(yaml.safe_load(path.read_text(encoding="utf-8")))
    for key in COMMAND_LISTS:
        for c in prepared.get(key, []):
            r = subprocess.run(["bash", "-n", "-c", c], capture_output=True, text=True)
            assert r.returncode == 0, f"{key}: {c}\n{r.stderr}"


@bash
def test_submit_script_parses_and_prints_usage():
    assert os.access(SUBMIT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SUBMIT)], capture_output=True).returncode == 0
    r = subprocess.run(["bash", str(SUBMIT), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: launch/submit.sh SPACE")
    r = subprocess.run(["bash", str(SUBMIT)], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


def _submit(args, tmp_path, **env):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DSGKD_"))}
    base.update(HOME=str(home), DSGKD_DRY_RUN="1", **env)
    return subprocess.run(["bash", str(SUBMIT), *args], capture_output=True, text=True, env=base, cwd=tmp_path)


@bash
def test_submit_composes_the_job(tmp_path):
    r = _submit([str(ROOT / "search_spaces" / "pairs.yaml"), "--num-samples", "64"], tmp_path,
                RAY_AUTH_TOKEN="secret")
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout)
    assert argv[:3] == ["ray", "job", "submit"]
    assert argv[argv.index("--address") + 1] == "http://127.0.0.1:8265"
    assert argv[argv.index("--working-dir") + 1] == str(ROOT)
    assert "--no-wait" in argv and "secret" not in r.stdout  # the token never goes on a command line
    entry = argv[argv.index("--") + 1:]
    assert entry[:4] == ["dsgkd", "search", "--space", "search_spaces/pairs.yaml"]
    assert entry[entry.index("--out") + 1] == "/mnt/shared/runs/pairs"
    assert entry[entry.index("--optuna-storage") + 1] == "sqlite:////home/ubuntu/dsgkd-optuna/pairs.db"
    assert entry[entry.index("--address") + 1] == "auto"
    assert entry[-2:] == ["--num-samples", "64"]


@bash
def test_submit_puts_the_study_in_the_heads_home(tmp_path):
    """launch/onprem.yaml's SSH user is the hospital's, not cluster.yaml's ubuntu."""
    r = _submit([str(ROOT / "search_spaces" / "pairs.yaml")], tmp_path, RAY_AUTH_TOKEN="t", DSGKD_HEAD_HOME="/home/kim/")
    argv = shlex.split(r.stdout)
    assert argv[argv.index("--optuna-storage") + 1] == "sqlite:////home/kim/dsgkd-optuna/pairs.db"


@bash
def test_submit_keeps_callers_out_and_storage(tmp_path):
    r = subprocess.run(["bash", str(SUBMIT), "search_spaces/demo.yaml", "--out", "/mnt/shared/runs/d1",
                        "--optuna-storage=postgresql://db/x"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "DSGKD_DRY_RUN": "1", "RAY_AUTH_TOKEN": "t",
                            "RAY_ADDRESS": "http://127.0.0.1:18265"})
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout)
    assert argv[argv.index("--address") + 1] == "http://127.0.0.1:18265"
    assert argv.count("--out") == 1 and argv.count("--optuna-storage=postgresql://db/x") == 1
    assert "--optuna-storage" not in argv


@bash
def test_submit_refuses_what_cannot_work_on_a_cluster(tmp_path):
    space = str(ROOT / "search_spaces" / "demo.yaml")
    r = _submit([space], tmp_path)  # no token anywhere, token mode
    assert r.returncode == 2 and "auth token" in r.stderr and "rsync-down" in r.stderr
    r = _submit([space], tmp_path, RAY_AUTH_TOKEN_PATH=str(tmp_path / "missing"))
    assert r.returncode == 2 and "RAY_AUTH_TOKEN_PATH" in r.stderr
    (tmp_path / "home" / ".ray").mkdir(parents=True)
    (tmp_path / "home" / ".ray" / "auth_token").write_text("t")
    assert _submit([space], tmp_path).returncode == 0  # ~/.ray/auth_token, as `ray up` left it
    for out in ("runs/x", "s3://bucket/runs/x"):  # must be the shared mount, as a path
        r = _submit([space, "--out", out], tmp_path)
        assert r.returncode == 2 and "RUN=" in r.stderr
    outside = tmp_path / "space.yaml"
    outside.write_text("pairs: []\n")
    r = _submit([str(outside)], tmp_path)
    assert r.returncode == 2 and "outside" in r.stderr


@bash
def test_submit_shares_the_cache_and_adds_no_exclude_of_its_own(tmp_path):
    """What the upload leaves out is one list, .gitignore's and .rayignore's (tests/launch/test_data_stays.py),
    for submit.sh as for a hand-typed `ray job submit`."""
    import json

    r = _submit([str(ROOT / "search_spaces" / "demo.yaml")], tmp_path, RAY_AUTH_TOKEN="t")
    argv = shlex.split(r.stdout)
    env = json.loads(argv[argv.index("--runtime-env-json") + 1])
    assert env["env_vars"]["DSGKD_CACHE"].startswith("/mnt/shared/")
    assert "excludes" not in env


@bash
def test_the_storage_password_stays_on_the_head(tmp_path):
    """Only the path of the head's password file is in what Ray records (entrypoint, runtime_env); the
    password of the caller's environment is in no word of the command."""
    r = _submit([str(ROOT / "search_spaces" / "demo.yaml")], tmp_path, RAY_AUTH_TOKEN="t",
                DSGKD_OPTUNA_STORAGE="postgresql://dsgkd@db.internal/optuna",
                DSGKD_STORAGE_PASSWORD="PHI_MARKER_7Q", DSGKD_STORAGE_PASSWORD_FILE="/home/ubuntu/.dsgkd-pw")
    assert r.returncode == 0, r.stderr
    assert "PHI_MARKER_7Q" not in r.stdout + r.stderr
    argv = shlex.split(r.stdout)
    entry = argv[argv.index("--") + 1:]
    assert entry[:5] == ["bash", "launch/with_storage_password.sh", "/home/ubuntu/.dsgkd-pw", "dsgkd", "search"]
    assert entry[entry.index("--optuna-storage") + 1] == "postgresql://dsgkd@db.internal/optuna"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
