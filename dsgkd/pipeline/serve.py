"""A trained student put to use: loaded with the threshold it was trained to, scoring notes in batches.

What prediction needs besides the weights is kept in the student directory itself, in `dsgkd.json`
(`STUDENT_META`): the temperature fitted on validation (`core.temperature`), the decision threshold chosen on
the calibrated validation probabilities, how it was chosen, the class names, the `max_length` notes
were cut to and the batch size, and the training data's columns, encoding and classes (the defaults for
new files). config.json stays the checkpoint's own, so `AutoModelForSequenceClassification` and
`AutoTokenizer` load the directory as before, and the student is self-contained when copied elsewhere. Every
file of it is checked as it loads (`student_files`): a bad copy would otherwise score every note wrongly.

Notes are encoded and scored a chunk at a time (`PREDICT_CHUNK_ROWS`), so neither the token ids of a
100,000-row file nor, in `predict_file`, its text is ever held at once. A row whose text is empty is not scored: its
`prob` is NaN and its `label` empty, and it keeps its place in the output.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from dsgkd import __version__
from dsgkd.config import RunConfig
from dsgkd.constants import PREDICT_CHUNK_ROWS
from dsgkd.core.features import encode_notes
from dsgkd.core.long_notes import split_notes
from dsgkd.core.metrics import curve_points, evaluate_with_ci
from dsgkd.core.steps import pick_device, predict
from dsgkd.data.emr import _missing, load_labelled
from dsgkd.data.stream import iter_chunks
from dsgkd.errors import UserError
from dsgkd.pipeline.student_files import META_FORMAT, STUDENT_META, load_classifier, load_tokenizer, read_meta
from dsgkd.storage import atomic_file, atomic_write_text


def label_names(cfg: RunConfig) -> list[str]:
    """The names of classes 0 and 1 (config.json's id2label, dsgkd.json's label_names): `data.label_names`, else
    the declared classes, else '0' and '1'."""
    return list(cfg.data.label_names or cfg.data.classes or ["0", "1"])


def student_meta(cfg: RunConfig, metrics: dict, label_names: list[str]) -> dict[str, Any]:
    """What `dsgkd.json` holds: a row is positive iff softmax(logits / temperature)[1] >= threshold."""
    return {"format": META_FORMAT, "dsgkd_version": __version__, "temperature": float(metrics["temperature"]),
            "threshold": float(metrics["threshold"]), "threshold_rule": cfg.eval.threshold,
            "label_names": list(label_names), "max_length": cfg.train.max_length,
            "long_notes": cfg.train.long_notes,
            "batch_size": cfg.train.batch_size, "text_col": cfg.data.text_col, "label_col": cfg.data.label_col,
            "encoding": cfg.data.encoding, "classes": cfg.data.classes}


def write_meta(student_dir: Path, cfg: RunConfig, metrics: dict, label_names: list[str]) -> None:
    meta = student_meta(cfg, metrics, label_names)
    atomic_write_text(Path(student_dir) / STUDENT_META, json.dumps(meta, indent=1) + "\n")


@dataclass
class Student:
    model: Any
    tokenizer: Any
    meta: dict[str, Any]
    path: Path
    device: Any

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def temperature(self) -> float:
        return float(self.meta["temperature"])


def student_dir(path: str | os.PathLike) -> Path:
    """A student directory, or the run directory `dsgkd train` wrote around one."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such model directory (pass a student directory or a `dsgkd train` --out)")
    if (path / STUDENT_META).is_file():
        return path
    if (path / "student" / STUDENT_META).is_file():
        return path / "student"
    inner = sorted(str(p.parent.relative_to(path)) for p in path.glob("seed_*/*/student"))
    if inner:
        raise UserError(f"{path}: a multi-seed run; pass one of its students, e.g. {path / inner[0]}")
    raise UserError(f"{path}: no {STUDENT_META} here or in {path / 'student'}, so the decision threshold is "
                    "unknown (not a student written by `dsgkd train`, or by one older than `dsgkd evaluate`)")


def load_student(path: str | os.PathLike, device: str = "cpu") -> Student:
    """The student at `path` (or in the run directory around it) with its meta; an ONNX student (`dsgkd
    export-onnx`: model.onnx beside dsgkd.json) is scored by onnxruntime on CPU, any other by PyTorch."""
    where = student_dir(path)
    meta = read_meta(where)
    onnx = (where / "model.onnx").is_file()
    if onnx and device not in ("auto", "cpu"):
        raise UserError(f"--device {device}: an ONNX student runs on CPU (onnxruntime); use --device cpu or auto")
    tokenizer = load_tokenizer(where)
    if onnx:
        from dsgkd.pipeline.onnx_runtime import ONNX_FILE, OnnxClassifier

        model, device = OnnxClassifier(where / ONNX_FILE), "cpu"
    else:
        model = load_classifier(where)
    try:
        dev = pick_device(device)  # a device this machine lacks is a UserError already
    except RuntimeError:  # torch does not know the name
        raise UserError(f"--device {device!r}: expected auto, cpu or cuda") from None
    return Student(model.to(dev).eval(), tokenizer, meta, where, dev)


def predict_probs(student: Student, texts: list[str], *, batch_size: int | None = None,
                  chunk_rows: int = PREDICT_CHUNK_ROWS) -> np.ndarray:
    """Calibrated P(positive), softmax(logits / T)[1], per text, NaN where the text is empty; encoded and scored
    `chunk_rows` at a time."""
    out = np.full(len(texts), np.nan)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    bs = batch_size or int(student.meta["batch_size"])
    for start in range(0, len(keep), chunk_rows):
        rows = keep[start:start + chunk_rows]
        # max_terms=0: scoring reads no term spans, so no term is looked for
        max_length = int(student.meta["max_length"])
        pieces = split_notes([texts[i] for i in rows], student.tokenizer, max_length,
                             student.meta["long_notes"])
        examples = encode_notes(pieces.texts, None, student.tokenizer, None, selector="latin", max_terms=0,
                                max_length=max_length)
        out[rows], _ = predict(student.model, examples, student.tokenizer.pad_token_id, bs, student.device,
                               student.temperature, pieces=pieces)
    return out


def labels_at(probs: np.ndarray, threshold: float) -> pd.Series:
    """0/1 at the threshold (positive iff prob >= threshold), empty where prob is NaN."""
    labels = pd.array((probs >= threshold).astype(int), dtype="Int64")
    labels[np.isnan(probs)] = pd.NA
    return pd.Series(labels)


def predict_file(student: Student, data, out, *, text_col: str, id_col: str | None = None,
                 encoding: str = "utf-8", batch_size: int | None = None, chunk_rows: int = PREDICT_CHUNK_ROWS,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Every row of `data`, in order, as `[id_col,] prob, label` in the CSV `out` (written through a temp
    file renamed at the end, so a failure leaves no partial file). Returns the number of rows."""
    if id_col in ("prob", "label"):
        raise UserError(f"--id-col {id_col!r}: the output already has a column of that name")
    columns = [text_col] + ([id_col] if id_col and id_col != text_col else [])
    chunks = iter_chunks(data, columns, encoding, chunk_rows)  # file, format and columns checked here
    n = 0
    with atomic_file(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for frame, done in chunks:
            if frame.empty:  # a header-only CSV reads as one empty chunk
                continue
            texts = ["" if _missing(v) else str(v) for v in frame[text_col]]
            probs = predict_probs(student, texts, batch_size=batch_size, chunk_rows=chunk_rows)
            part = pd.DataFrame({"prob": probs, "label": labels_at(probs, student.threshold)})
            if id_col:
                part.insert(0, id_col, frame[id_col].to_numpy())
            part.to_csv(f, header=n == 0, index=False)
            n += len(part)
            log(f"predict: {n:,} rows ({done:.0%} of {Path(data).name})")
        if n == 0:
            raise UserError(f"{data}: no rows")
    return n


def evaluate_file(student: Student, data, *, text_col: str, label_col: str, encoding: str = "utf-8",
                  n_boot: int = 1000, seed: int = 0, batch_size: int | None = None,
                  chunk_rows: int = PREDICT_CHUNK_ROWS) -> dict[str, Any]:
    """Metrics with bootstrap CIs on a labelled file at the student's stored threshold, and the ROC, PR and
    reliability curves with that operating point (`curve_points`), read and validated as training reads its
    files (rows with empty text dropped, with a warning)."""
    ds, dropped = load_labelled(data, text_col, label_col, encoding=encoding, classes=student.meta.get("classes"))
    y = np.asarray(ds["label"])
    p = predict_probs(student, list(ds["text"]), batch_size=batch_size, chunk_rows=chunk_rows)
    return {"model": str(student.path), "data": str(data), "n": int(len(y)), "n_positive": int(y.sum()),
            "dropped_empty": dropped, "threshold": student.threshold, "temperature": student.temperature,
            "threshold_rule": student.meta.get("threshold_rule"), "n_bootstrap": n_boot, "seed": seed,
            "metrics": evaluate_with_ci(y, p, student.threshold, n_boot=n_boot, seed=seed),
            "curves": curve_points(y, p, student.threshold)}
