"""Scoring an ONNX student (`dsgkd export-onnx`, `pipeline.onnx_student`) with onnxruntime on CPU.

Apart from the exporter so that `serve.load_student` can import it without importing the exporter, which reads
the student directory through `serve` (no import cycle). onnxruntime comes with the optional extra `dsgkd[onnx]`.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from dsgkd.errors import UserError

ONNX_FILE = "model.onnx"


def onnxruntime_or_exit():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("ONNX needs onnxruntime: pip install 'dsgkd[onnx]'") from None
    return onnxruntime


class OnnxClassifier:
    """An onnxruntime session that answers like a Hugging Face classifier where `core.steps.predict_logits`
    calls it (`model(input_ids=, attention_mask=).logits`, `.eval()`, `.to()`), so scoring has one code path."""

    def __init__(self, path: Path):
        ort = onnxruntime_or_exit()
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a damaged graph
            raise UserError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0]})") from None

    def eval(self):
        return self

    def to(self, _device):
        return self

    def __call__(self, *, input_ids, attention_mask):
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(["logits"], feeds)[0]))
