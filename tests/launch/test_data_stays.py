"""Notes kept inside the checkout reach no node: .rayignore, as Ray's job upload reads it (the package Ray
zips for `ray job submit --working-dir`) and as `ray up`'s rsync reads it (the filter arguments Ray builds from
cluster.yaml), leaves data files, runs and caches behind and takes the whole package."""
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / "cluster.yaml", ROOT / "launch" / "onprem.yaml"]

KEPT = ["dsgkd/__init__.py", "dsgkd/data/__init__.py", "dsgkd/data/emr.py", "launch/submit.sh",
        "search_spaces/demo.yaml", "pyproject.toml", "constraints.txt"]
LEFT = ["notes.csv", "sub/deep/visits.parquet", "labels.tsv", "a.jsonl", "b.ndjson", "c.pq", "scratch/d.CSV",
        "runs/pairs/result.json", "data/ped.csv", "out/x/predictions.json", ".cache/dsgkd/tok.json",
        "final/model.safetensors", "experiments/RUN/teacher_cache/g0/signals.bin", "dsgkd/stray.csv"]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A checkout with the repository's ignore files, the package's own files and data files planted around."""
    tree = tmp_path / "checkout"
    for rel in [".gitignore", ".rayignore", *KEPT, *LEFT]:
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        source = ROOT / rel
        path.write_bytes(source.read_bytes() if source.is_file() else b"PHI_MARKER_7Q\n")
    return tree


def uploaded(tree: Path, tmp_path: Path) -> set[str]:
    """The files in the package Ray builds for a job's working dir."""
    from ray._private.runtime_env.packaging import create_package

    target = tmp_path / "pkg.zip"
    create_package(str(tree), target, include_gitignore=True)
    with zipfile.ZipFile(target) as z:
        return {n for n in z.namelist() if not n.endswith("/")}


def test_the_ignore_file_names_every_kind_of_data():
    from ray._private.thirdparty.pathspec import PathSpec

    lines = (ROOT / ".rayignore").read_text().splitlines()
    spec = PathSpec.from_lines("gitwildmatch", lines)
    for ext in ["csv", "tsv", "parquet", "pq", "jsonl", "ndjson"]:
        assert spec.match_file(f"x/notes.{ext}") and spec.match_file(f"NOTES.{ext.upper()}"), ext
    for folder in ["runs/r/result.json", "data/ped.txt", ".cache/a", "x/.cache/a", "RUN/teacher_cache/g/i.json"]:
        assert spec.match_file(folder), folder
    assert not any(line.startswith("!") for line in lines), "a negation reads differently in git and rsync"


def test_a_job_upload_takes_the_package_and_leaves_the_data(checkout, tmp_path):
    files = uploaded(checkout, tmp_path)
    assert set(KEPT) <= files
    assert not [f for f in files if f != ".gitignore" and f != ".rayignore" and f not in KEPT], files
    assert not any("PHI_MARKER_7Q" in (checkout / f).read_text(errors="ignore") for f in files)


def test_no_file_of_the_repository_is_left_behind():
    """An unanchored "data/" would drop dsgkd/data/ and break `import dsgkd.data` on the cluster."""
    from ray._private.thirdparty.pathspec import PathSpec

    spec = PathSpec.from_lines("gitwildmatch", (ROOT / ".rayignore").read_text().splitlines())
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    files = tracked.stdout.split() if tracked.returncode == 0 else [
        p.relative_to(ROOT).as_posix() for p in (ROOT / "dsgkd").rglob("*.py")]
    # records/ (tables' predictions and stand-ins, for re-rendering and resuming here) stays here on purpose
    assert files and not [f for f in files if spec.match_file(f) and not f.startswith("records/")]
    assert spec.match_file("records/t/stand_ins/m/model.safetensors")


@pytest.mark.parametrize("config", CONFIGS, ids=["aws", "onprem"])
def test_ray_ups_sync_merges_the_same_file(config):
    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert cfg["rsync_filter"] == [".gitignore", ".rayignore"]
    assert cfg["file_mounts"]["~/dsgkd"] == "."


def rsync_args(config: Path) -> list[str]:
    """The filter arguments Ray's SSH command runner puts on every rsync of `ray up` and `ray rsync-up`."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    cfg = yaml.safe_load(config.read_text(encoding="utf-8"))
    return SSHCommandRunner._create_rsync_filter_args(None, {"rsync_exclude": cfg["rsync_exclude"],
                                                              "rsync_filter": cfg["rsync_filter"]})


@pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
def test_ray_ups_rsync_leaves_the_data_and_an_explicit_copy_still_works(checkout, tmp_path):
    args = rsync_args(CONFIGS[0])
    synced = tmp_path / "node"
    subprocess.run(["rsync", "-a", *args, f"{checkout}/", f"{synced}/"], check=True)
    files = {p.relative_to(synced).as_posix() for p in synced.rglob("*") if p.is_file()}
    assert set(KEPT) <= files and not set(LEFT) & files, sorted(files)
    # `ray rsync-up cluster.yaml data/ped.csv /mnt/shared/data/ped.csv`: the same filters, one named file
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["rsync", "-a", *args, "data/ped.csv", f"{shared}/ped.csv"], cwd=checkout, check=True)
    assert (shared / "ped.csv").read_bytes() == (checkout / "data" / "ped.csv").read_bytes()
