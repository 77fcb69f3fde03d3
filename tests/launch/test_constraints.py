"""constraints.txt: every declared dependency pinned within its declared range, and used by both cluster configs."""
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and not re.search(r"[<>~!@+ ]", version), f"not an exact public pin: {line}"
            out[canonicalize_name(name)] = version
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def test_every_declared_dependency_is_pinned_inside_its_declared_range():
    pinned = pins()
    for req in declared():
        name = canonicalize_name(req.name)
        if name == "mlflow":  # the full server package: optional, not in the tested environment (mlflow-skinny is)
            continue
        assert name in pinned, f"{req.name} is declared but not pinned in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{req.name}=={pinned[name]} outside {req}"


CONFIGS = ["cluster.yaml", "launch/onprem.yaml"]
CONSTRAINED = "PIP_CONSTRAINT=~/dsgkd/constraints.txt pip install"  # reaches pip's isolated builds too


def node_commands(config: str) -> list[str]:
    from ray_cluster_config import COMMAND_LISTS

    cfg = yaml.safe_load((ROOT / config).read_text())
    return [c for key in COMMAND_LISTS for c in cfg.get(key) or []]


def installs(config: str) -> list[str]:
    """Every install a node runs: pip (system or venv) and uv pip, each as the text from its installer on."""
    return [m.group(0) for c in node_commands(config)
            for m in re.finditer(r"(PIP_CONSTRAINT=\S+ )?(python3 -m )?(~/\.local/bin/uv )?pip install[^;&|]*", c)]


@pytest.mark.parametrize("config", CONFIGS)
def test_every_node_installs_the_package_under_the_constraints(config):
    text = (ROOT / config).read_text()
    assert f"{CONSTRAINED} -q -e ~/dsgkd\n" in text
    ray = re.search(r'ray\[default,tune,train\]==([\d.]+)', text).group(1)
    assert pins()["ray"] == ray  # the cluster's Ray, the constraints' Ray and the client's agree


@pytest.mark.parametrize("config", CONFIGS)
def test_every_install_on_a_node_is_pinned(config):
    """No package a node installs is left to whatever the index serves that day: each install is under
    constraints.txt (and names only pinned packages), or is the hash-checked uv of launch/uv.txt."""
    found = installs(config)
    assert len(found) >= 5, found
    pinned = pins()
    for cmd in found:
        if "--require-hashes" in cmd:
            assert cmd.strip().endswith("-r ~/dsgkd/launch/uv.txt") and "--no-deps" in cmd
            continue
        assert cmd.startswith(CONSTRAINED) or " -c ~/dsgkd/constraints.txt " in cmd, cmd
        for word in shlex.split(cmd.split("install", 1)[1]):
            if word.startswith("-") or word.startswith("~") or word.startswith("/"):
                continue
            req = Requirement(word)
            name = canonicalize_name(req.name)
            assert name in pinned, f"{config}: {word} is not pinned in constraints.txt"
            assert not req.specifier or req.specifier.contains(pinned[name]), f"{word} against {pinned[name]}"
    assert not any("curl" in c for c in node_commands(config)), "an installer fetched unpinned"


def test_uv_is_one_release_with_its_checksum():
    lines = (ROOT / "launch" / "uv.txt").read_text().replace("\\\n", " ").splitlines()
    [req] = [line for line in lines if line.strip() and not line.startswith("#")]
    name_version, *hashes = req.split()
    assert re.fullmatch(r"uv==\d+\.\d+\.\d+", name_version)
    assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes)


def test_every_dependency_of_what_a_node_installs_is_pinned():
    """The requirements' closure, read from this environment's metadata (Linux, this Python), so a pin the
    regenerated file lost (or a new dependency of a pinned release) is caught here, not on a node."""
    import importlib.metadata as md

    pinned = pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in [*project["dependencies"], "boto3", "optuna-dashboard"]]
    seen = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = (name, tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        assert name in pinned, f"{req.name} (needed by what the nodes install) is not pinned in constraints.txt"
        try:
            requires = md.distribution(req.name).requires or []
        except md.PackageNotFoundError:  # optuna-dashboard is on the head only: its pin is checked above
            continue
        for line in requires:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(dep)
    assert ("ray", ("default", "train", "tune")) in seen
