"""`dsgkd train`: one run, or several seeds of DSG-KD against its KD-off control, written atomically.

After the best epoch is chosen, a temperature is fitted on validation (`calibrate`) and the threshold is chosen
on the calibrated validation probabilities; the test metrics and predictions.csv are the calibrated ones (AUROC
and AUPRC do not change: temperature scaling keeps the order), metrics.json's `calibration` holds ECE, Brier and
NLL before and after, and `val` stays the engine's uncalibrated best-epoch record.

A run directory is either complete (config.yaml, metrics.json, predictions.csv, student/) or absent:
everything is written into a hidden staging directory beside it and renamed at the end
(`dsgkd.storage.staged_dir`), and bad input is detected by `prepare` before the staging directory exists.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dsgkd import __version__
from dsgkd.config import RunConfig
from dsgkd.constants import REPORTED
from dsgkd.core.engine import Prepared, fit
from dsgkd.core.features import encode_notes
from dsgkd.core.long_notes import split_notes
from dsgkd.core.metrics import binary_metrics, choose_threshold, evaluate_with_ci, mean_std
from dsgkd.core.calibration import primary_comparison
from dsgkd.core.stats import seed_note_comparison
from dsgkd.core.steps import pick_device, predict_logits
from dsgkd.core.temperature import fit_temperature, nll, positive_prob
from dsgkd.errors import UserError
from dsgkd.pipeline.card import render_card
from dsgkd.pipeline import run_caches
from dsgkd.pipeline.parallel import train_side_by_side
from dsgkd.pipeline.serve import label_names, write_meta
from dsgkd.pipeline.resolve import ResolvedRun
from dsgkd.pipeline.teacher_cache import caches_dir
from dsgkd.pipeline.teachers import prepare_run
from dsgkd.pipeline.redraw import fit_with_redraws
from dsgkd.storage import atomic_write_text, staged_dir


@contextlib.contextmanager
def staged_output(out: Path, *, overwrite: bool = False):
    """Yield a staging directory that becomes `out` only if the block succeeds."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out}: already exists and is not empty (pass --overwrite to replace it)")
    with staged_dir(out) as stage:
        yield stage


def split_logits(model, tokenizer, notes: pd.DataFrame, cfg: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """Labels and (n, 2) logits of a classifier on one split's notes (text, label)."""
    pieces = split_notes(list(notes["text"]), tokenizer, cfg.train.max_length, cfg.train.long_notes)
    examples = encode_notes(pieces.texts, pieces.expand(list(notes["label"])), tokenizer, None,
                            selector=cfg.distill.selector, max_terms=cfg.distill.max_terms,
                            max_length=cfg.train.max_length)
    logits, _ = predict_logits(model, examples, tokenizer.pad_token_id, cfg.train.batch_size, pick_device("cpu"),
                               pieces=pieces)
    return np.array(notes["label"]), logits


def predict_split(model, tokenizer, notes: pd.DataFrame, cfg: RunConfig,
                  temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and positive-class probabilities softmax(logits / temperature)[:, 1] on one split's notes."""
    y, logits = split_logits(model, tokenizer, notes, cfg)
    return y, positive_prob(logits, temperature)


def test_predictions(result, cfg: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    return predict_split(result.model, result.tokenizer, result.prepared.splits.test, cfg)


def _ece_brier(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = binary_metrics(y, p, 0.5)  # threshold-free metrics only
    return {"ece": m["ece"], "brier": m["brier"]}


def calibrate(result, cfg: RunConfig) -> tuple[dict, np.ndarray, np.ndarray]:
    """Temperature scaling fitted on validation with the best epoch's weights (`core.temperature`), the
    threshold chosen again on the calibrated validation probabilities, and ECE / Brier / NLL before and after
    on validation and test. Returns the calibration record, the test labels and calibrated test probabilities."""
    splits = result.prepared.splits
    y_val, z_val = split_logits(result.model, result.tokenizer, splits.val, cfg)
    y, z = split_logits(result.model, result.tokenizer, splits.test, cfg)
    t = fit_temperature(z_val, y_val)
    p_val = positive_prob(z_val, t)
    threshold = choose_threshold(y_val, p_val, cfg.eval.threshold) if len(set(y_val.tolist())) > 1 else 0.5
    record = {"method": "temperature", "temperature": t, "fitted_on": "validation", "threshold": threshold,
              "threshold_uncalibrated": result.threshold}
    for split, labels, logits in (("val", y_val, z_val), ("test", y, z)):
        record[split] = split_calibration(labels, logits, t)
    return record, y, positive_prob(z, t)


def split_calibration(labels: np.ndarray, logits: np.ndarray, t: float) -> dict[str, float]:
    """ECE, Brier and NLL of one split's predictions before and after temperature `t`."""
    before, after = _ece_brier(labels, positive_prob(logits)), _ece_brier(labels, positive_prob(logits, t))
    return {**{f"{k}_before": v for k, v in before.items()}, **{f"{k}_after": v for k, v in after.items()},
            "nll_before": nll(logits, labels, 1.0), "nll_after": nll(logits, labels, t)}


def train_one(run: ResolvedRun, out: Path, *, prepared: Prepared | None = None, log=print,
              teacher_cache: dict[str, str] | None = None) -> dict:
    """Fit, calibrate and pick the threshold on validation, evaluate once on test, and write the run to `out`;
    the student directory carries its temperature and threshold (`serve.STUDENT_META`), its class names in
    config.json, and a model card (README.md). `teacher_cache`: the teachers' signal read from caches (source →
    directory, `engine.fit`), with `prepared` made without teacher weights."""
    started, cfg = time.time(), run.cfg
    result, draws = fit_with_redraws(prepared or prepare_run(run), fit, log=log, teacher_cache=teacher_cache,
                                     on_epoch=lambda r: log(_epoch_line(r.epoch, r.metrics, cfg.train.select_metric)))
    # scored as `dsgkd evaluate` and `predict` will score the saved student: attention KD trained it with eager
    # attention, a reload runs SDPA, and the two differ by ~1e-8, enough to flip a near-tie in a weak model's ranks
    result.model.set_attn_implementation("sdpa")
    calibration, y, p = calibrate(result, cfg)
    threshold = calibration["threshold"]
    splits = result.prepared.splits
    metrics = {
        "dsgkd_version": __version__, "seed": cfg.train.seed, "best_epoch": result.best_epoch,
        "threshold": threshold, "threshold_rule": cfg.eval.threshold, "temperature": calibration["temperature"],
        "val": {k.removeprefix("val_"): v for k, v in result.metrics.items() if k.startswith("val_")},
        "test": evaluate_with_ci(y, p, threshold, n_boot=cfg.eval.n_bootstrap, seed=cfg.train.seed),
        "calibration": calibration,
        "data": {"fingerprint": splits.fingerprint, "n_train": len(splits.train), "n_val": len(splits.val),
                 "n_test": len(splits.test), "dropped_empty": splits.dropped_empty,
                 "n_transfer": len(result.prepared.transfer_texts)},
        "history": result.history, "draws": draws, "train_seconds": round(time.time() - started, 1),
        "precision": result.precision, "effective_batch_size": result.effective_batch_size,
    }
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / "config.yaml")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    pd.DataFrame({"label": y, "prob": p}).to_csv(out / "predictions.csv", index_label="row")
    names = label_names(cfg)
    result.model.config.id2label = dict(enumerate(names))
    result.model.config.label2id = {name: i for i, name in enumerate(names)}
    result.model.save_pretrained(out / "student")
    result.tokenizer.save_pretrained(out / "student")
    write_meta(out / "student", cfg, metrics, names)
    atomic_write_text(out / "student" / "README.md", render_card(cfg, metrics, result.prepared.layer_pairs))
    return metrics


def run_train(run: ResolvedRun, out: str | Path, *, overwrite: bool = False, log=print) -> dict:
    pick_device(run.cfg.train.device)  # a device this machine lacks is an error before any data is read
    prepared = prepare_run(run)  # every input error surfaces here, before `out` exists
    with staged_output(Path(out), overwrite=overwrite) as stage:
        metrics = train_one(run, stage, prepared=prepared, log=log)
    t = metrics["test"]
    log("test " + "  ".join(f"{m} {t[m]['value']:.4f} [{t[m]['ci_low']:.4f}, {t[m]['ci_high']:.4f}]"
                            for m in REPORTED))
    return metrics


def run_seeds(run: ResolvedRun, out: str | Path, seeds: list[int], *, overwrite: bool = False,
              log=print, workers: int = 1) -> dict:
    """DSG-KD and its KD-off control (every KD weight at zero, everything else equal) for each seed; with
    `workers` > 1 that many (seed, arm) runs at once, each in its own process (`dsgkd.pipeline.parallel`).

    The frozen teachers are forwarded once per cache group before the runs (`run_caches`: the pretrained teacher
    once for every seed, a fine-tuned one once per seed), not at every step of every epoch of every run, and each
    run reads them as a search's trial does, so a searched config is re-run on the signal it was chosen on. Side by
    side, the KD-off controls train while the teachers are cached."""
    cfg = run.cfg
    if not cfg.distill.kd_on:
        raise UserError("--seeds compares DSG-KD with its KD-off control: set alpha, beta or gamma > 0")
    pick_device(cfg.train.device)
    arms = {"dsgkd": run, "control": run.control()}
    jobs = [(seed, arm, arms[arm].with_seed(seed)) for seed in seeds for arm in arms]
    first = prepare_run(jobs[0][2], teacher_weights=False)  # every input error here, before `out` exists
    with staged_output(Path(out), overwrite=overwrite) as stage:
        cfg.to_yaml(stage / "config.yaml")
        todo = [(job, stage / f"seed_{seed}" / arm, f"seed {seed} · {arm}") for seed, arm, job in jobs]
        if workers > 1:
            done = train_side_by_side(train_one, todo, workers, stage)
        else:
            run_caches.build([job.cfg for *_, job in jobs], stage, 1)
            done = []
            for k, (job, job_out, tag) in enumerate(todo):
                log(f"== {tag}")
                cache = run_caches.row_cache(job.cfg, stage)  # the first job (seed 0, DSG-KD) reads caches: `first`
                prepared = first if k == 0 else prepare_run(job, teacher_weights=cache is None)
                done.append(train_one(job, job_out, prepared=prepared, teacher_cache=cache, log=log))
        shutil.rmtree(caches_dir(stage), ignore_errors=True)  # a by-product: the runs are what --out holds
        metrics = {(seed, arm): m for (seed, arm, _), m in zip(jobs, done)}
        runs = {arm: [metrics[(seed, arm)] for seed in seeds] for arm in arms}
        probs = {arm: [pd.read_csv(stage / f"seed_{seed}" / arm / "predictions.csv")["prob"].to_numpy()
                       for seed in seeds] for arm in arms}
        y = pd.read_csv(stage / f"seed_{seeds[0]}" / "dsgkd" / "predictions.csv")["label"].to_numpy()
        summary = summarise(runs, probs, y, seeds, cfg)
        (stage / "summary.json").write_text(json.dumps(summary, indent=1))
        (stage / "summary.md").write_text(summary_table(summary))
    log(summary_table(summary))
    return summary


def summarise(runs: dict, probs: dict, y: np.ndarray, seeds: list[int], cfg: RunConfig) -> dict:
    """Mean ± std over seeds per arm, and DSG-KD − control in mean per-seed test AUROC: its p from the exact
    sign-flip test over the seed-paired differences (`core.calibration`: the test that held its size in the A/A
    calibration), the seeds × notes bootstrap interval as a description. The seed is the unit, so one lucky seed
    cannot carry the difference; an arm pair with the same seed shares its data order and head initialisation."""
    table = {arm: {m: dict(zip(("mean", "std"), mean_std([r["test"][m]["value"] for r in rs]))) for m in REPORTED}
             for arm, rs in runs.items()}
    diff = seed_note_comparison(y, np.array(probs["dsgkd"]), np.array(probs["control"]), "auroc",
                                n_boot=cfg.eval.n_bootstrap, seed=seeds[0], pair_seeds=True)
    tested = primary_comparison([r["test"]["auroc"]["value"] for r in runs["dsgkd"]],
                                [r["test"]["auroc"]["value"] for r in runs["control"]])
    diff.update(p=tested["p"], test="sign_flip", min_p=tested["min_p"], can_reject=tested["can_reject"])
    return {"seeds": seeds, "test": table, "auroc_dsgkd_minus_control": diff,
            "per_seed": {arm: [r["test"]["auroc"]["value"] for r in rs] for arm, rs in runs.items()}}


def summary_table(s: dict) -> str:
    rows = ["| arm | " + " | ".join(f"test {m}" for m in REPORTED) + " |",
            "|---|" + "---|" * len(REPORTED)]
    for arm, metrics in s["test"].items():
        rows.append(f"| {arm} | " + " | ".join(f"{metrics[m]['mean']:.4f} ± {metrics[m]['std']:.4f}"
                                              for m in REPORTED) + " |")
    d = s["auroc_dsgkd_minus_control"]
    rows.append("")
    rows.append(f"seeds {s['seeds']}; test AUROC DSG-KD − control (mean over seeds): {d['diff']:+.4f}, seeds × notes "
                f"bootstrap interval [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]; exact sign-flip test over the seeds "
                f"p = {d['p']:.3f} (the smallest p {len(s['seeds'])} seeds can give: {d['min_p']:.3f})")
    return "\n".join(rows) + "\n"


def _epoch_line(epoch: int, m: dict, select: str) -> str:
    parts = [f"epoch {epoch}", f"train_loss {m.get('train_loss', float('nan')):.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in m.items() if k.startswith("train_") and k not in ("train_loss", "train_ce")]
    parts += [f"val_loss {m['val_loss']:.4f}", f"val_auroc {m['val_auroc']:.4f}", f"val_f1 {m['val_f1']:.4f}",
              f"best_epoch {m['best_epoch']} (by val_{select})"]
    return "  ".join(parts)
