"""`dsgkd table` (and benchmarks/paper_table.py): the DSG-KD paper's comparison on the embedded benchmark.

For each teacher→student pair, six rows scored on one test split, each over the same seeds:

- control: the student fine-tuned alone (KD off, labelled notes only);
- teacher: the teacher fine-tuned alone (the very checkpoint logit KD reads);
- random teacher: the knowledge-free control's teacher fine-tuned alone (same shape, random init);
- paper: DSG-KD with the paper's settings (alpha 0.6, beta 0.2, all layers, MSE, Latin terms, no logit
  KD, labelled notes only, the pretrained teacher);
- searched: the config `dsgkd search` + `dsgkd export` pick for the pair on validation AUROC;
- knowledge-free: the searched config with a randomly initialised teacher of the same shape, fine-tuned
  by the same recipe: what the KD machinery gives without any domain knowledge.

Nothing is tuned on test: the search ranks by validation AUROC, each run keeps its best validation epoch
and takes its threshold from validation, and each run predicts the test split once. The training recipe
(epochs, LRs, batch) is fixed across rows and not searched, so no row gets a tuning budget the control
lacks. Paired bootstraps compare seed-averaged test probabilities on the same resampled notes.
"""
from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from dsgkd.config import RunConfig
from dsgkd.constants import KD_OFF, PAPER, REPORTED, SEARCH_SPACES
from dsgkd.errors import UserError
from dsgkd.search.space import SearchSpace, load_space
from dsgkd.storage import atomic_write_text

SPACE = SEARCH_SPACES / "paper_table.yaml"
ROWS = ("control", "teacher", "random teacher", "paper", "searched", "knowledge-free")
TEACHER_ROWS = {"teacher": "", "random teacher": "-random"}  # row → suffix of its dir under OUT/teachers
KD_ROWS = ("paper", "searched")
DATA_SEEDS = {"train": 100, "val": 101, "test": 102, "transfer": 103}  # disjoint from `dsgkd synth`'s default 0


# ------------------------------------------------------------------------------------------- data
def make_data(out: Path, sizes: dict[str, int]) -> dict[str, str]:
    """The benchmark's four files, each from its own generator seed (so no patient spans two files); the
    transfer notes are written without labels."""
    from dsgkd.data.synthetic import generate_notes, write_table

    paths = {}
    for split, n in sizes.items():
        path = out / f"{split}.csv"
        if not path.is_file():
            df = generate_notes(n, seed=DATA_SEEDS[split])
            write_table(df[["ER_DHX"]] if split == "transfer" else df, path)
        paths[split] = str(path.resolve())
    return paths


def table_space(space: SearchSpace, data: dict[str, str]) -> SearchSpace:
    base = space.base.with_overrides({"data.path": data["train"], "data.val_path": data["val"],
                                      "data.test_path": data["test"], "data.transfer_path": data["transfer"]})
    return space.model_copy(update={"base": base})


# ------------------------------------------------------------------------------------------- jobs
def _job(kind: str, cfg_yaml: str, out: str) -> str:
    """One run in a worker process (one thread each: two processes on two cores beat one with two threads)."""
    import torch
    import transformers
    import yaml

    from dsgkd.pipeline.train import staged_output, train_one

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()  # per-load reports from hundreds of runs would bury the table
    cfg = RunConfig.from_dict(yaml.safe_load(cfg_yaml), source=out)
    with staged_output(Path(out), overwrite=True) as stage:
        if kind == "teacher":
            evaluate_teacher(cfg, stage)
        else:
            train_one(cfg, stage, log=lambda *_: None)
    return out


def evaluate_teacher(cfg: RunConfig, out: Path) -> None:
    """Fine-tune (or reuse) the teacher exactly as logit KD gets it, then score it like any run: threshold
    from its validation predictions, test predicted once."""
    from dsgkd.core.metrics import choose_threshold, evaluate_with_ci
    from dsgkd.data.emr import load_splits
    from dsgkd.models.load import load_classifier
    from dsgkd.pipeline.teachers import finetuned_teacher_dir
    from dsgkd.pipeline.train import predict_split

    splits = load_splits(cfg.data)
    tok, model = load_classifier(str(finetuned_teacher_dir(cfg, splits)))
    threshold = choose_threshold(*predict_split(model, tok, splits.val, cfg), cfg.eval.threshold)
    y, p = predict_split(model, tok, splits.test, cfg)
    metrics = {"seed": cfg.train.seed, "threshold": threshold,
               "test": evaluate_with_ci(y, p, threshold, n_boot=cfg.eval.n_bootstrap, seed=cfg.train.seed)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    pd.DataFrame({"label": y, "prob": p}).to_csv(out / "predictions.csv", index_label="row")


def run_jobs(jobs: list[tuple[str, RunConfig, Path]], workers: int) -> None:
    todo = [(kind, cfg.dump_yaml(), str(out)) for kind, cfg, out in jobs if not (out / "metrics.json").is_file()]
    if not todo:
        return
    ctx = multiprocessing.get_context("spawn")  # no forked copies of a parent's torch thread pool
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for done in pool.map(_job, *zip(*todo)):
            print(f"  done {Path(done).relative_to(Path(done).parents[2])}", flush=True)


def row_configs(base: RunConfig, searched: RunConfig) -> dict[str, RunConfig]:
    """The paper maps every layer index to index; where depths differ, every student layer to its
    proportional teacher layer (`uniform`), the nearest thing to "all layers": what `auto` names."""
    from dsgkd.core.layer_maps import named_layer_map
    from dsgkd.models.shape import model_depth

    spec = named_layer_map("auto", model_depth(base.teacher.ref), model_depth(base.student.ref))
    paper = base.with_overrides({**PAPER, "distill.layer_map": spec})
    control = paper.with_overrides(KD_OFF)
    return {"control": control, "paper": paper, "searched": searched,
            "knowledge-free": searched.with_overrides({"teacher.random_init": True})}


def layer_maps_for(space: SearchSpace, pair) -> list[str]:
    """The space's layer maps this pair's depths allow (a one-pair search rejects a map no pair can use)."""
    from dsgkd.core.layer_maps import is_valid
    from dsgkd.models.shape import model_depth

    depths = model_depth(pair.teacher), model_depth(pair.student)
    return [m for m in space.layer_maps if is_valid(m, *depths)]


def searched_config(space: SearchSpace, out: Path, trials: int | None) -> RunConfig:
    """Search the pair on validation AUROC and export the best KD trial (resumes an interrupted search)."""
    from dsgkd.report.export import export_best
    from dsgkd.search.tune import search

    if not (out / "best.yaml").is_file():
        search(space, out, resume=(out / "tune").is_dir(), num_samples=None if (out / "tune").is_dir() else trials)
        export_best(out)
    return RunConfig.from_yaml(out / "best.yaml")


# ---------------------------------------------------------------------------------------- summary
def summarise_pair(pair_dir: Path, seeds: list[int], n_boot: int) -> dict:
    from dsgkd.core.metrics import bootstrap_ci, mean_std, paired_bootstrap

    runs = {row: [json.loads((pair_dir / row / f"seed_{s}" / "metrics.json").read_text()) for s in seeds]
            for row in ROWS}
    preds = {row: [pd.read_csv(pair_dir / row / f"seed_{s}" / "predictions.csv") for s in seeds] for row in ROWS}
    y = preds["control"][0]["label"].to_numpy()
    avg = {row: np.mean([p["prob"].to_numpy() for p in ps], axis=0) for row, ps in preds.items()}
    table = {}
    for row in ROWS:
        per_seed = {m: [r["test"][m]["value"] for r in runs[row]] for m in REPORTED}
        value, lo, hi = bootstrap_ci(y, avg[row], "auroc", n_boot=n_boot, seed=0)
        table[row] = {**{m: dict(zip(("mean", "std"), mean_std(v))) for m, v in per_seed.items()},
                      "auroc_per_seed": per_seed["auroc"],
                      "ensemble_auroc": {"value": value, "ci_low": lo, "ci_high": hi}}
    tests = {f"{row} vs {ref}": paired_bootstrap(y, avg[row], avg[ref], "auroc", n_boot=n_boot, seed=0)
             for row in KD_ROWS for ref in ("control", "knowledge-free") if row != ref}
    return {"rows": table, "tests": tests, "n_test": int(len(y))}


def verdict(r: dict) -> dict[str, bool]:
    """A DSG-KD row "beats" a reference only when the paired test and the seed means agree on the sign:
    a higher mean with a lower seed-ensemble AUROC is a tie at best. The goal needs the control beaten
    with p < 0.05 and the knowledge-free control beaten."""
    def beats(ref: str, significant: bool) -> bool:
        t, rows = r["tests"][f"searched vs {ref}"], r["rows"]
        ahead = t["diff"] > 0 and rows["searched"]["auroc"]["mean"] > rows[ref]["auroc"]["mean"]
        return bool(ahead and (t["p_value"] < 0.05 or not significant))

    out = {"control": beats("control", True), "knowledge-free": beats("knowledge-free", False),
           "knowledge-free, p < 0.05": beats("knowledge-free", True)}
    return {**out, "goal": out["control"] and out["knowledge-free"]}


def render(results: dict, meta: dict) -> str:
    verdicts = {pair: verdict(r) for pair, r in results.items()}
    count = {k: sum(v[k] for v in verdicts.values()) for k in ("control", "knowledge-free",
                                                               "knowledge-free, p < 0.05", "goal")}
    n = len(results)
    lines = ["# DSG-KD on the embedded benchmark: the paper's table, offline", "",
             f"Produced by `{meta['command']}` in {meta['seconds'] / 60:.1f} min on {meta['machine']} "
             f"({meta['date']}). Seeds {meta['seeds']}; {meta['sizes']['train']} labelled training notes, "
             f"{meta['sizes']['val']} validation, {meta['sizes']['test']} test, {meta['sizes']['transfer']} unlabeled "
             f"transfer notes; {meta['trials']} search trials per pair.", "",
             f"**Goal (searched DSG-KD beats the KD-off control on test AUROC with paired-bootstrap p < 0.05, and "
             f"beats the knowledge-free control): met for {count['goal']} of {n} pairs.** Searched beats the "
             f"KD-off control with p < 0.05 in {count['control']} of {n}; beats the knowledge-free control in "
             f"{count['knowledge-free']} of {n} ({count['knowledge-free, p < 0.05']} with p < 0.05). \"Beats\" needs "
             "the paired ensemble difference and the mean over seeds to agree.", "",
             "Rows: mean ± std over seeds of each run's test metric (threshold for F1 chosen on validation); "
             "`ens. AUROC [95% CI]` is the AUROC of the seed-averaged probabilities with a bootstrap CI over test "
             "notes; p-values are paired bootstraps of that ensemble AUROC on the same resampled notes.", ""]
    for pair, r in results.items():
        lines += [f"## {pair}", "", "| row | test AUROC | AUPRC | F1 | Brier | ens. AUROC [95% CI] |",
                  "|---|---|---|---|---|---|"]
        for row in ROWS:
            m = r["rows"][row]
            e = m["ensemble_auroc"]
            lines.append(f"| {row} | " + " | ".join(f"{m[k]['mean']:.4f} ± {m[k]['std']:.4f}" for k in REPORTED)
                         + f" | {e['value']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}] |")
        lines += ["", "| comparison (ensemble test AUROC) | diff [95% CI] | p |", "|---|---|---|"]
        lines += [f"| {name} | {t['diff']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] | {t['p_value']:.3f} |"
                  for name, t in r["tests"].items()]
        v = verdicts[pair]
        lines += ["", f"Searched config: {r['searched']}", "",
                  f"Goal met: {'yes' if v['goal'] else 'no'} (beats the KD-off control with p < 0.05: "
                  f"{'yes' if v['control'] else 'no'}; beats the knowledge-free control: "
                  f"{'yes' if v['knowledge-free'] else 'no'}).", ""]
    return "\n".join(lines)


def describe(cfg: RunConfig) -> str:
    d = cfg.distill
    return (f"alpha {d.alpha:.3g} ({d.hidden_loss}, layer map `{d.layer_map}`, selector `{d.selector}`), "
            f"beta {d.beta:.3g}, gamma {d.gamma:.3g} at T {d.temperature:.3g}, fine-tuned teacher "
            f"{cfg.teacher.finetune}, transfer notes {'yes' if cfg.data.transfer_path else 'no'}")


# ------------------------------------------------------------------------------------------- main
def run_table(out: Path, *, seeds: list[int], trials: int | None, workers: int, sizes: dict[str, int],
              pairs: list[str] | None, results_path: Path | None, space_path: Path = SPACE,
              command: str = "dsgkd table") -> dict:
    from dsgkd.models.tiny import ensure_all

    started = time.time()
    space = load_space(space_path)
    chosen = [p for p in space.pairs if pairs is None or p.key in pairs]
    if pairs is not None and len(chosen) != len(pairs):
        raise UserError(f"--pairs: unknown pair in {pairs}; the space has {[p.key for p in space.pairs]}")
    out = out.resolve()
    space = table_space(space, make_data(out / "data", sizes))
    ensure_all({r for p in chosen for r in (p.teacher, p.student)})
    print("==> fine-tune teachers (pretrained and random-init, per seed)", flush=True)
    base = space.base
    jobs = []
    for teacher in sorted({p.teacher for p in chosen}):
        for seed in seeds:
            cfg = base.with_overrides({"teacher.ref": teacher, "teacher.finetune": True, "train.seed": seed})
            jobs.append(("teacher", cfg, out / "teachers" / teacher / f"seed_{seed}"))
            jobs.append(("teacher", cfg.with_overrides({"teacher.random_init": True}),
                         out / "teachers" / f"{teacher}-random" / f"seed_{seed}"))
    run_jobs(jobs, workers)
    results = {}
    for pair in chosen:
        print(f"==> search {pair.key}", flush=True)
        pair_space = space.model_copy(update={"pairs": [pair], "layer_maps": layer_maps_for(space, pair)})
        pair_dir = out / pair.key.replace(">", "__")
        searched = searched_config(pair_space, pair_dir / "search", trials)
        pair_base = base.with_overrides({"teacher.ref": pair.teacher, "student.ref": pair.student})
        configs = row_configs(pair_base, searched.model_copy(update={"provenance": None}))
        jobs = [("student", cfg.with_overrides({"train.seed": seed}), pair_dir / row / f"seed_{seed}")
                for row, cfg in configs.items() for seed in seeds]
        print(f"==> rows {pair.key}", flush=True)
        run_jobs(jobs, workers)
        for (row, suffix), seed in itertools.product(TEACHER_ROWS.items(), seeds):  # shared fine-tuned teachers
            link = pair_dir / row / f"seed_{seed}"
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(out / "teachers" / f"{pair.teacher}{suffix}" / f"seed_{seed}", target_is_directory=True)
        results[pair.key] = {**summarise_pair(pair_dir, seeds, base.eval.n_bootstrap), "searched": describe(searched)}
    meta = {"command": command, "seconds": time.time() - started, "seeds": seeds, "sizes": sizes,
            "trials": trials or space.budget.num_samples, "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} CPU cores, no GPU"}
    atomic_write_text(out / "results.json", json.dumps({"meta": meta, "results": results}, indent=1))
    print(write_report(out, results_path))
    return results


def write_report(out: Path, results_path: Path | None) -> str:
    """OUT/results.md (and --results) from OUT/results.json: the figures and their provenance stay those of
    the run that measured them."""
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    text = render(saved["results"], saved["meta"])
    atomic_write_text(out / "results.md", text)
    if results_path is not None:
        atomic_write_text(results_path, text)
    return text
