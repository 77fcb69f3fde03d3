"""The model card (README.md) every student directory `dsgkd train` writes carries.

A student copied out of its run loses config.yaml and metrics.json beside it; the card keeps what a
reader of the weights needs: where they came from (teacher, student, data fingerprint, distillation
settings), how well they did (validation, and test with bootstrap CIs at the threshold frozen on
validation), the threshold itself, and what they are not fit for. The YAML front matter is the Hugging
Face model-card convention (`huggingface_hub.ModelCardData`, rendered offline), so the hub and
`ModelCard.load` read it. It lives in `pipeline`, not `report`, because `train` writes it and an inner
layer may not import an outer one.
"""
from __future__ import annotations

from huggingface_hub import EvalResult, ModelCardData

from dsgkd.config import RunConfig
from dsgkd.core.metrics import METRICS
from dsgkd.core.terms import registered
from dsgkd.errors import UserError
from dsgkd.models.pooling import CONFIG_KEY as POOLING_KEY
from dsgkd.models.presets import resolve
from dsgkd.models.tiny import split_ref
from dsgkd.pipeline.serve import STUDENT_META, label_names


LONG_NOTES_SAY = {"truncate": "longer notes are truncated",
                  "head_tail": "longer notes keep their first and last tokens",
                  "windows": "longer notes are scored by overlapping windows, the highest-scoring one counting"}


def base_model(ref: str) -> str | None:
    """The hub id a student started from, for the card's `base_model`; None for stand-ins and directories."""
    try:
        r = resolve(ref)
    except UserError:  # a directory that has gone since training
        return None
    return r.source if r.kind in ("preset", "hub") else None


def stand_ins(cfg: RunConfig) -> list[str]:
    return [ref for ref in (cfg.teacher.ref, cfg.student.ref) if split_ref(ref)]


# model-index metric ids (the hub's names, where it has one) for the test metrics the card reports
HUB_METRICS = {"auroc": "roc_auc", "auprc": "average_precision", "f1": "f1", "precision": "precision",
               "recall": "recall", "specificity": "specificity", "accuracy": "accuracy", "brier": "brier_score",
               "ece": "expected_calibration_error"}


def eval_results(metrics: dict, dataset: str) -> list[EvalResult]:
    """The test metrics (calibrated, at the stored threshold) as model-index entries; a NaN one is left out."""
    t = metrics["test"]
    return [EvalResult(task_type="text-classification", dataset_type=dataset, dataset_name=f"notes {dataset}",
                       dataset_split="test", metric_type=HUB_METRICS[m], metric_name=m,
                       metric_value=round(t[m]["value"], 6),
                       metric_args={"threshold": metrics["threshold"], "temperature": metrics["temperature"]}
                       if m in ("f1", "precision", "recall", "specificity", "accuracy") else None)
            for m in METRICS if m in t and t[m]["value"] == t[m]["value"]]


def card_data(cfg: RunConfig, metrics: dict) -> ModelCardData:
    """The front matter: a hub or a registry reads the languages, the data fingerprint as the dataset and the
    test metrics (`model-index`) without parsing the prose."""
    tags = ["dsgkd", "knowledge-distillation", "clinical-notes", "code-switching"]
    dataset = f"dsgkd-notes-{metrics['data']['fingerprint']}"
    return ModelCardData(library_name="transformers", pipeline_tag="text-classification", language=["ko", "en"],
                         base_model=base_model(cfg.student.ref), datasets=[dataset],
                         model_name=f"{cfg.student.ref} distilled from {cfg.teacher.ref}",
                         eval_results=eval_results(metrics, dataset),
                         tags=tags + (["offline-stand-in", "synthetic-data"] if stand_ins(cfg) else []))


def pipeline_snippet(max_length: int) -> list[str]:
    """Python that gives `dsgkd predict`'s probabilities and labels from `transformers.pipeline` alone (no dsgkd,
    no trust_remote_code): the raw logits, divided by the stored temperature, softmaxed, cut at the stored
    threshold. The tests run this very text."""
    return [
        "import json, numpy as np",
        "from transformers import pipeline",
        'DIR = "path/to/student"',
        'meta, clf = json.load(open(f"{DIR}/dsgkd.json")), pipeline("text-classification", model=DIR)',
        "def score(texts):",
        f'    outs = clf(texts, top_k=None, function_to_apply="none", truncation=True, max_length={max_length})',
        '    z = np.array([[{o["label"]: o["score"] for o in out}[n] for n in meta["label_names"]] for out in outs])',
        '    p = 1 / (1 + np.exp(-(z[:, 1] - z[:, 0]) / meta["temperature"]))  # softmax(z / T)[1]',
        '    return p, np.where(p >= meta["threshold"], *meta["label_names"][::-1])',
    ]


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _g(v: float) -> str:
    return f"{v:g}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows)]


def _draws(draws: list[dict], floor: float) -> str:
    """Which draw this student is, when the configured seed stayed below the floor (`pipeline.redraw`)."""
    kept = max((d for d in draws if d["val_auroc"] is not None), key=lambda d: d["val_auroc"])
    aurocs = ", ".join("—" if d["val_auroc"] is None else f"{d['val_auroc']:.3f}" for d in draws)
    return (f"{len(draws)} draws, validation AUROC {aurocs} (floor "
            f"{floor:g}); this student is the draw of seed {kept['seed']}")


def render_card(cfg: RunConfig, metrics: dict, layer_pairs: list[tuple[int, int]]) -> str:
    """The card as Markdown with YAML front matter, from the run's resolved config and metrics.json."""
    d, t, data = cfg.distill, metrics["test"], metrics["data"]
    kd = "KD-off control (every KD weight 0)" if not d.kd_on else "DSG-KD"
    teacher = cfg.teacher.ref + (" (random-init twin, knowledge-free control)" if cfg.teacher.random_init else "") \
        + (" (and a copy fine-tuned on the task, for the terms that read it)" if cfg.teacher.finetune else "")
    c = metrics["calibration"]
    lines = [
        "---", card_data(cfg, metrics).to_yaml(), "---", "",
        f"# {cfg.student.ref} distilled from {cfg.teacher.ref} ({kd})", "",
        f"A binary note classifier: `{cfg.student.ref}` fine-tuned on labelled notes "
        + (f"while distilling the frozen teacher `{cfg.teacher.ref}` on the code-switched terms of each note "
           "(DSG-KD, arXiv 2409.14904)" if d.kd_on else "with every distillation weight at zero (the KD-off "
           "control of DSG-KD, arXiv 2409.14904: same head, schedule and data)")
        + f", written by `dsgkd train` (dsgkd {metrics['dsgkd_version']}, seed {metrics['seed']}).", "",
        "## Calibration and decision threshold", "",
        f"P(class 1) = softmax(logits / T)[1] with the temperature **T = {metrics['temperature']:.6g}**, fitted on "
        "validation after the best epoch by minimising the negative log-likelihood (temperature scaling: the "
        "order of the notes, so AUROC and AUPRC, is unchanged). A note is positive iff that probability >= "
        f"**{metrics['threshold']:.6g}**, chosen on the calibrated validation probabilities by the "
        f"`{metrics['threshold_rule']}` rule and frozen for test. Both are stored with the model in "
        f"`{STUDENT_META}`, with `max_length` {cfg.train.max_length} ({LONG_NOTES_SAY[cfg.train.long_notes]}) and the "
        "training data's columns; `dsgkd predict` and `dsgkd evaluate` apply them.", "",
        *_table(["split", "ECE before", "ECE after", "Brier before", "Brier after"],
                [[split, c[split]["ece_before"], c[split]["ece_after"], c[split]["brier_before"],
                  c[split]["brier_after"]] for split in ("val", "test")]), "",
        f"Classes (config.json `id2label`): 0 = `{label_names(cfg)[0]}`, 1 = `{label_names(cfg)[1]}`.", "",
        "```bash",
        "dsgkd predict  --model DIR --data notes.csv --text-col "
        f"{cfg.data.text_col} [--id-col ID] --out preds.csv",
        f"dsgkd evaluate --model DIR --data labelled.csv --text-col {cfg.data.text_col} --label-col "
        f"{cfg.data.label_col}",
        "```", "",
        "`transformers.pipeline(\"text-classification\", model=DIR)` alone labels by argmax of the uncalibrated "
        "softmax; to get the same probabilities and labels as `dsgkd predict` without dsgkd, apply the "
        "temperature and threshold from `dsgkd.json`:", "",
        "```python", *pipeline_snippet(cfg.train.max_length), "```", "",
        "The probabilities agree with `dsgkd predict` to within 1e-6; a note scored within that of the threshold "
        "(the threshold is one of the validation probabilities) may fall on the other side.", "",
        *([f"**This head reads the mean of the last layer, not the first token** (config.json `{POOLING_KEY}: "
           "mean`). `transformers` alone ignores that key and reads the first token: load the model with "
           "`dsgkd.pipeline.student_files.load_classifier(DIR)` (or `dsgkd.models.pooling.apply_saved_pooling` on "
           "a model you loaded), or use its ONNX export, or the scores will be wrong.", ""]
          if cfg.student.pooling == "mean" else []),
        "## Training", "",
        *_table(["setting", "value"], [
            ["teacher", teacher], ["student", cfg.student.ref + (" (random init)" if cfg.student.random_init else "")],
            ["head reads", "the first token" if cfg.student.pooling == "cls" else "the masked mean of the last layer"],
            *([f"{term.weight} ({term.label})", f"{_g(getattr(d, term.weight))}, reads the {term.source(d)} teacher"]
              for term in registered()),
            ["temperature", _g(d.temperature)], ["layer map", f"{d.layer_map} → {layer_pairs}"],
            ["selector (terms distilled)", d.selector], ["max terms per note", d.max_terms],
            ["hidden loss", d.hidden_loss], ["projection", d.projection],
            ["epochs (best)", f"{cfg.train.epochs} ({metrics['best_epoch']})"],
            ["batch size", cfg.train.batch_size], ["max length", cfg.train.max_length],
            ["learning rates (encoder, head)", f"{cfg.train.lr_encoder:g}, {cfg.train.lr_head:g}"],
            ["best epoch selected by", f"validation {cfg.train.select_metric}"],
            *([["redrawn (train.restart_floor)", _draws(metrics["draws"], cfg.train.restart_floor)]]
              if len(metrics.get("draws", ())) > 1 else [])]), "",
        "## Data", "",
        f"`{cfg.data.path}`" + "".join(f", `{p}`" for p in (cfg.data.val_path, cfg.data.test_path) if p)
        + f": text column `{cfg.data.text_col}`, label column `{cfg.data.label_col}`"
        + (f" (classes {cfg.data.classes}, negative first)" if cfg.data.classes else " (0/1)")
        + f"; content fingerprint `{data['fingerprint']}` (train, validation and test splits); "
        f"{data['n_train']} train, {data['n_val']} validation, {data['n_test']} test notes; "
        f"{data['dropped_empty']} empty notes dropped; {data['n_transfer']} unlabelled transfer notes.", "",
        "## Validation (best epoch)", "",
        *_table(["metric", "value"], [[k, v] for k, v in metrics["val"].items()]), "",
        f"## Test ({data['n_test']} notes, threshold from validation, 95% bootstrap CI over "
        f"{cfg.eval.n_bootstrap} draws)", "",
        *_table(["metric", "value", "95% CI"],
                [[m, t[m]["value"], f"[{_fmt(t[m]['ci_low'])}, {_fmt(t[m]['ci_high'])}]"] for m in METRICS if m in t]),
        "", "## Intended use and limits", "",
        "- Research use: studying knowledge distillation for classifying code-switched clinical notes.",
        "- Not a medical device. As triage decision support it is not validated clinically: it must not "
        "decide or delay anyone's care, and it does not replace clinical judgement.",
        "- The metrics hold for notes like the test split above (same source, period, prevalence and "
        "writing), and the threshold was tuned to the validation split. Re-measure on your own "
        "labelled notes with `dsgkd evaluate` before relying on either.",
        f"- Notes longer than {cfg.train.max_length} tokens: {LONG_NOTES_SAY[cfg.train.long_notes]}; empty notes "
        "are not scored." + ("" if cfg.train.long_notes == "truncate" else " The pipeline snippet above truncates "
                             "them; `dsgkd predict` scores them as trained."),
    ]
    if stand_ins(cfg):
        lines.append(f"- {' and '.join(f'`{r}`' for r in stand_ins(cfg))}: offline stand-in models (tiny, pretrained "
                     "briefly on dsgkd's synthetic corpora), used with synthetic notes (`dsgkd synth`) to test "
                     "the software. These numbers say nothing about real patients or real checkpoints.")
    return "\n".join(lines) + "\n"
