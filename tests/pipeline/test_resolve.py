"""A run is resolved once, its shape checks from configs alone and before anything slow; `auto` becomes a named map.

The command-line tests run `dsgkd train` in a fresh process with an empty stand-in cache (and, for refs, an
empty Hugging Face cache and no reachable hub), time it, and check that it never got as far as torch.
"""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from dsgkd.config import RunConfig
from dsgkd.errors import UserError
from dsgkd.models import tiny
from dsgkd.pipeline.resolve import resolve_run

PROBE = """
import json, sys
from dsgkd.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps(sorted(m for m in ("torch", "pandas", "ray") if m in sys.modules)))
sys.exit(code)
"""


@pytest.fixture
def no_builds(monkeypatch, tmp_path):
    monkeypatch.setenv("DSGKD_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny, "_build", lambda *a: pytest.fail("a shape check must not build a stand-in"))
    return tmp_path


def cfg_for(teacher: str, student: str, **over) -> RunConfig:
    return RunConfig().with_overrides({"teacher.ref": teacher, "student.ref": student, **over})


@pytest.mark.parametrize("teacher, student, resolved", [("kmbert-tiny", "xlmr-tiny", "all"),     # 4 and 4 layers
                                                        ("biobert-tiny", "kobert-tiny", "uniform")])  # 6 and 2
def test_auto_is_the_default_and_becomes_a_named_map(no_builds, teacher, student, resolved):
    cfg = cfg_for(teacher, student)
    assert cfg.distill.layer_map == "auto"
    run = resolve_run(cfg)
    assert run.cfg.distill.layer_map == resolved
    assert run.cfg.model_dump() == cfg.with_overrides({"distill.layer_map": resolved}).model_dump()
    assert run.layer_pairs == ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4)) if resolved == "all" else ((0, 0), (3, 1), (6, 2))
    assert not (no_builds / "models").exists()


@pytest.mark.parametrize("spec", ["skip", "last_k:2", "0:0,6:2", [[0, 0], [6, 2]]])
def test_explicit_maps_are_kept(no_builds, spec):
    cfg = cfg_for("biobert-tiny", "kobert-tiny", **{"distill.layer_map": spec})
    assert resolve_run(cfg).cfg == cfg


def test_without_kd_the_teacher_is_not_asked_and_auto_stays(no_builds):
    cfg = cfg_for("no-such-teacher", "kobert-tiny", **{"distill.alpha": 0.0, "distill.beta": 0.0})
    run = resolve_run(cfg)
    assert run.cfg.distill.layer_map == "auto" and run.teacher is None and run.layer_pairs == ()


@pytest.mark.parametrize("over, needle", [
    ({"distill.layer_map": "all"}, "layer_map 'all' needs equal depths (teacher 6, student 2)"),
    ({"distill.layer_map": "0:0,9:1"}, "pair (9, 1) out of range for teacher 0..6, student 0..2"),
    ({"distill.layer_map": "last_k:3"}, "exceeds the shallower depth 2"),
    ({"train.max_length": 513}, "train.max_length 513 exceeds student 'kobert-tiny' limit of 512 tokens"),
])
def test_bad_shapes_fail_from_the_specs(no_builds, over, needle):
    with pytest.raises(UserError) as e:
        resolve_run(cfg_for("biobert-tiny", "kobert-tiny", **over))
    assert needle in str(e.value)
    assert not (no_builds / "models").exists()


def test_the_teachers_limit_counts_too(no_builds, local_bert_dir):
    cfg = cfg_for(str(local_bert_dir), "kobert-tiny", **{"train.max_length": 200, "distill.layer_map": "uniform"})
    with pytest.raises(UserError, match=f"exceeds teacher '{local_bert_dir}' limit of 128 tokens"):
        resolve_run(cfg)


# --- the command, in a fresh process ---

def train_cli(notes, tmp_path, *extra, env=None) -> tuple[subprocess.CompletedProcess, float]:
    argv = ["train", "--data", str(notes), "--text-col", "ER_DHX", "--label-col", "LABEL",
            "--out", str(tmp_path / "run"), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    return proc, time.perf_counter() - t0


def fresh_env(tmp_path, **extra) -> dict:
    """Empty stand-in and Hugging Face caches; the hub left to the caller (HF_HUB_OFFLINE unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
           and not k.lower().endswith("_proxy")}
    return {**env, "DSGKD_CACHE": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "hf"), **extra}


def assert_one_fast_line(proc, seconds, needle):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert seconds <= 5, f"took {seconds:.1f} s"
    assert json.loads(proc.stdout) == []  # never got as far as torch (or pandas, or Ray)


@pytest.mark.parametrize("extra, needle", [(["--layer-map", "0:0,9:1"], "out of range"),
                                           (["--max-length", "100000"], "limit of 512 tokens")])
def test_bad_shapes_fail_in_seconds_with_no_stand_in_built(notes_csv, tmp_path, extra, needle):
    proc, seconds = train_cli(notes_csv, tmp_path, "--teacher", "biobert-tiny", "--student", "kobert-tiny", *extra,
                              env=fresh_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert_one_fast_line(proc, seconds, needle)
    assert not (tmp_path / "cache" / "models").exists() and not (tmp_path / "run").exists()


@pytest.fixture
def silent_proxy():
    """A proxy that accepts connections and never answers: the network of a firewall that drops packets."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("network", ["refused", "silent", "offline"])
def test_a_mistyped_teacher_fails_in_seconds_without_network(notes_csv, tmp_path, silent_proxy, network):
    hub = {"refused": {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
           "silent": {"HTTPS_PROXY": silent_proxy, "HTTP_PROXY": silent_proxy},
           "offline": {"HF_HUB_OFFLINE": "1"}}[network]
    proc, seconds = train_cli(notes_csv, tmp_path, "--teacher", "no-such-model-xyz", "--student", "kobert-tiny",
                              env=fresh_env(tmp_path, **hub))
    needle = "not available offline" if network == "offline" else "the hub is unreachable"
    assert_one_fast_line(proc, seconds, "model 'no-such-model-xyz': not a preset, not a local directory")
    assert needle in proc.stderr and "presets: kmbert" in proc.stderr


def test_dsgkd_train_resolves_its_run_once(few_notes, tmp_path, monkeypatch):
    """One `dsgkd train --seeds` (two seeds × DSG-KD and control) reads each model's shape and resolves the layer
    map exactly once: the arms and seeds are derived from the one ResolvedRun, never re-validated."""
    from dsgkd.cli import main
    from dsgkd.pipeline import resolve

    calls = {"model_shape": [], "resolve_layer_map": 0}
    shape, layer_map = resolve.model_shape, resolve.resolve_layer_map
    monkeypatch.setattr(resolve, "model_shape", lambda ref: calls["model_shape"].append(ref) or shape(ref))

    def counted_map(*args):
        calls["resolve_layer_map"] += 1
        return layer_map(*args)

    monkeypatch.setattr(resolve, "resolve_layer_map", counted_map)
    argv = ["train", "--data", str(few_notes), "--text-col", "ER_DHX", "--label-col", "LABEL", "--epochs", "1",
            "--max-length", "32", "--n-bootstrap", "10", "--teacher", "kmbert-tiny", "--student", "kobert-tiny",
            "--temperature", "2", "--seeds", "0,1", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert calls == {"model_shape": ["kobert-tiny", "kmbert-tiny"], "resolve_layer_map": 1}
    assert RunConfig.from_yaml(tmp_path / "run" / "config.yaml").distill.layer_map == "uniform"


@pytest.fixture
def few_notes(tmp_path):
    """40 short notes, enough for a one-epoch run on two seeds in a few seconds."""
    from dsgkd.data.synthetic import generate_notes, write_table

    path = tmp_path / "notes.csv"
    write_table(generate_notes(40, seed=3), path)
    return path
