"""A student as ONNX for fast CPU scoring: `dsgkd export-onnx` (the scoring side is `pipeline.onnx_runtime`).

The directory written is a student directory like `dsgkd train`'s (`dsgkd.json` with its temperature and
threshold, tokenizer, config.json with the class names, the card), with `model.onnx` in place of the
safetensors weights; `dsgkd predict` and `evaluate` see `model.onnx` and score with onnxruntime. The graph is
exported with `torch.onnx.export` (TorchScript tracing, dynamic batch and sequence axes) from the eager-attention
model, whose trace has no shape-dependent branches; `--int8` quantises its weights to int8 with onnxruntime's
dynamic quantisation (activations quantised per batch at run time), the usual CPU speed-up for BERT-family
encoders. onnxruntime and onnx come with the optional extra `dsgkd[onnx]`, so the base install stays as it is.
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import torch

from dsgkd.errors import UserError
from dsgkd.pipeline.onnx_runtime import ONNX_FILE, onnxruntime_or_exit
from dsgkd.pipeline.serve import STUDENT_META, student_dir
from dsgkd.pipeline.student_files import load_classifier, load_tokenizer, read_meta
from dsgkd.storage import atomic_write_text, staged_dir

OPSET = 17


class LogitsOnly(torch.nn.Module):
    """The classifier as a function of (input_ids, attention_mask) to logits: what the graph takes and gives.
    token_type_ids are left to the model (zeros for one text), as `dsgkd predict` leaves them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


ONNX_NOTE = """
## This directory: the ONNX export

`model.onnx` is this student exported to ONNX, {kind}, by `dsgkd export-onnx` from `{src}`; `dsgkd predict`
and `dsgkd evaluate --model DIR` score it with onnxruntime on CPU, applying the same temperature and threshold
(`dsgkd.json`). The `transformers.pipeline` snippet above needs the PyTorch student. Re-measure an int8 export's
metrics with `dsgkd evaluate` before relying on it.
"""


@contextlib.contextmanager
def _quiet():
    """The tracer's warnings about Python branches (none depends on the shapes here) and onnxruntime's advice
    to pre-process before quantising say nothing to a user of the command."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def export_onnx(model: str | Path, out: str | Path, *, int8: bool = False, overwrite: bool = False) -> Path:
    """Write the student at `model` as an ONNX student directory `out` (whole or not at all)."""
    src, out = student_dir(model), Path(out)
    meta = read_meta(src)
    if (src / ONNX_FILE).is_file():
        raise UserError(f"{src}: already an ONNX student; export the PyTorch student it came from")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(f"--out {out}: already exists and is not empty (pass --overwrite to replace it)")
    if out.resolve() == src.resolve():
        raise UserError(f"--out {out}: is the student itself; write the ONNX student elsewhere")
    onnxruntime_or_exit()
    tokenizer = load_tokenizer(src)
    net = load_classifier(src, attn_implementation="eager").eval()
    example = tokenizer(["a note of a few words", "two"], padding=True, return_tensors="pt")
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"}}
    with staged_dir(out) as stage, _quiet():
        fp32 = stage / (".fp32.onnx" if int8 else ONNX_FILE)
        with torch.no_grad():
            # eval() on the wrapper: the exporter restores the mode it found on it, recursively, dropout included
            torch.onnx.export(LogitsOnly(net).eval(), (example["input_ids"], example["attention_mask"]), str(fp32),
                              input_names=["input_ids", "attention_mask"], output_names=["logits"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(stage / ONNX_FILE), weight_type=QuantType.QInt8)
            fp32.unlink()
        tokenizer.save_pretrained(stage)
        net.config.save_pretrained(stage)
        if (src / "README.md").is_file():
            atomic_write_text(stage / "README.md", (src / "README.md").read_text(encoding="utf-8") + ONNX_NOTE.format(
                kind="int8 (dynamic quantisation)" if int8 else "fp32", src=src))
        meta["runtime"] = {"onnx": ONNX_FILE, "int8": int8, "opset": OPSET, "exported_from": str(src)}
        atomic_write_text(stage / STUDENT_META, json.dumps(meta, indent=1) + "\n")
    return out
