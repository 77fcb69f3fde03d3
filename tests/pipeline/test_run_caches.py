"""A table's rows read their frozen teachers from caches built once per cache group: the pretrained teacher once
for every seed, a random-init teacher once per seed, no teacher forward while the rows train, and a resumed
table reuses the caches."""
import json

from dsgkd.config import RunConfig
from dsgkd.core.teacher.signal import FORWARD_LOG_ENV
from dsgkd.experiments import paper_table as pt
from dsgkd.pipeline import run_caches
from dsgkd.pipeline.teacher_cache import cache_group

TINY = {"train": 40, "val": 30, "test": 30, "transfer": 20}


def _rows(data: dict[str, str]) -> dict[str, RunConfig]:
    base = RunConfig().with_overrides({
        "teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny", "data.path": data["train"],
        "data.val_path": data["val"], "data.test_path": data["test"], "data.transfer_path": data["transfer"],
        "data.text_col": "ER_DHX", "data.label_col": "LABEL", "train.epochs": 1, "train.batch_size": 16,
        "eval.n_bootstrap": 10})
    searched = base.with_overrides({"distill.alpha": 0.5, "distill.beta": 0.0, "distill.gamma": 0.0,
                                    "distill.layer_map": "last_k:2", "distill.hidden_view": "raw"})
    knowledge_free = searched.with_overrides({"teacher.random_init": True})
    return {"control": searched.with_overrides({"distill.alpha": 0.0}), "searched": searched,
            "knowledge_free": knowledge_free}


def test_the_plan_unites_layers_and_attention_within_a_group_and_skips_kd_off():
    a = RunConfig().with_overrides({"distill.alpha": 0.5, "distill.beta": 0.0, "distill.gamma": 0.0,
                                    "distill.layer_map": "last_k:1"})
    b = a.with_overrides({"distill.beta": 0.2, "distill.layer_map": "first_last"})
    off = a.with_overrides({"distill.alpha": 0.0})
    plan = run_caches.plan([a, b, off])
    assert list(plan) == [(cache_group(a), "pretrained")] and cache_group(a) == cache_group(b)
    _, layers, attention = plan[(cache_group(a), "pretrained")]
    assert layers == sorted(run_caches.teacher_layers(a) | run_caches.teacher_layers(b)) and attention
    assert len(layers) == 2  # kmbert-tiny's first and last states (last_k:1 reads the last)
    logits_only = a.with_overrides({"teacher.finetune": True, "distill.alpha": 0.0, "distill.gamma": 1.0})
    assert run_caches.plan([logits_only])[(cache_group(logits_only), "finetuned")][1:] == ([4], False)


def test_rows_read_one_cache_per_group_and_no_teacher_while_training(tmp_path, monkeypatch):
    log = tmp_path / "forwards.log"
    monkeypatch.setenv(FORWARD_LOG_ENV, str(log))
    data = pt.make_data(tmp_path / "data", TINY)
    rows = _rows(data)
    jobs = [("student", cfg.with_overrides({"train.seed": s}), tmp_path / "pair" / row / f"seed_{s}")
            for row, cfg in rows.items() for s in (0, 1)]
    pt.run_jobs(jobs, 1, None, tmp_path / "pair")
    index = json.loads((tmp_path / "pair" / "teacher_cache" / "index.json").read_text())
    assert len(index) == 3  # the pretrained teacher for both seeds, the random-init teacher once per seed
    forwarded = sum(int(line.split()[1]) for line in log.read_text().splitlines())
    assert forwarded == 3 * (TINY["train"] + TINY["transfer"])  # each cache's notes once, nothing in training
    assert all((out / "metrics.json").is_file() for *_, out in jobs)

    (jobs[2][2] / "metrics.json").unlink()  # a searched row cut off: the resumed table re-runs it from the caches
    pt.run_jobs(jobs, 1, None, tmp_path / "pair")
    assert sum(int(line.split()[1]) for line in log.read_text().splitlines()) == forwarded
    assert (jobs[2][2] / "metrics.json").is_file()


def test_two_pairs_in_one_call_each_read_their_own_caches_and_share_the_control(tmp_path):
    data = pt.make_data(tmp_path / "data", TINY)
    rows = _rows(data)
    groups = []
    for teacher in ("kmbert-tiny", "biobert-tiny"):
        pair = tmp_path / teacher
        groups.append(([("student", rows[row].with_overrides({"teacher.ref": teacher}), pair / row / "seed_0")
                        for row in ("control", "searched")], pair))
    pt.run_groups(groups, 2, None)
    for teacher in ("kmbert-tiny", "biobert-tiny"):
        index = json.loads((tmp_path / teacher / "teacher_cache" / "index.json").read_text())
        assert len(index) == 1 and (tmp_path / teacher / "searched" / "seed_0" / "metrics.json").is_file()
    shared = tmp_path / "biobert-tiny" / "control" / "seed_0"
    assert shared.is_symlink() and (shared / "metrics.json").read_text() == \
        (tmp_path / "kmbert-tiny" / "control" / "seed_0" / "metrics.json").read_text()
