"""constraints.txt: every declared dependency pinned within its declared range, and used by both cluster configs."""
import re
import tomllib
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("config", ["cluster.yaml", "launch/onprem.yaml"])
def test_every_node_installs_the_package_under_the_constraints(config):
    text = (ROOT / config).read_text()
    assert re.search(r"pip install -q -c ~/dsgkd/constraints\.txt -e ~/dsgkd\b", text)
    ray = re.search(r'ray\[default,tune,train\]==([\d.]+)', text).group(1)
    assert pins()["ray"] == ray  # the cluster's Ray, the constraints' Ray and the client's agree
