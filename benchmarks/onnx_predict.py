"""Throughput of `dsgkd predict` on CPU: the PyTorch student against its ONNX export, fp32 and int8, and the
int8 export's AUROC cost on the test split.

Two students: one from `dsgkd train` (kobert-tiny distilled from kmbert-tiny on the default world's benchmark
files, or --model DIR) and a random-init student of BERT-base shape (12 layers, width 768, 12 heads) with the
tiny student's tokenizer, temperature and threshold: ~100x the work per note, the size a hospital would serve.
Each runtime scores the same N synthetic notes through `serve.predict_file` (what `dsgkd predict` runs; model
loading not timed) and the labelled test split through `serve.evaluate_file`'s scorer. Prints one JSON object.

    python benchmarks/onnx_predict.py                                  # full: 10,000 notes per student
    python benchmarks/onnx_predict.py --notes 1000 --base-notes 100    # small
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dsgkd.cli import main as dsgkd
from dsgkd.core.metrics import binary_metrics
from dsgkd.data.benchmark import write_benchmark
from dsgkd.data.synthetic import generate_notes, write_table
from dsgkd.experiments.demo import demo_sizes
from dsgkd.pipeline.onnx_student import export_onnx
from dsgkd.pipeline.serve import load_student, predict_file, predict_probs


def train_tiny(folder: Path, notes: int, epochs: int) -> tuple[Path, Path]:
    data = write_benchmark(folder / "data", demo_sizes(notes))
    out = folder / "tiny"
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds nothing but the JSON
        code = dsgkd(["train", "--data", data["train"], "--val", data["val"], "--test", data["test"], "--text-col",
                      "ER_DHX", "--label-col", "LABEL", "--teacher", "kmbert-tiny", "--student", "kobert-tiny",
                      "--epochs", str(epochs), "--n-bootstrap", "10", "--out", str(out)])
    if code:
        raise SystemExit(f"dsgkd train exited {code}")
    return out / "student", Path(data["test"])


def base_shaped(tiny: Path, out: Path) -> Path:
    """A random-init BERT-base-shaped classifier carrying the tiny student's tokenizer and dsgkd.json."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=512, pad_token_id=tok.pad_token_id)
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    (out / "dsgkd.json").write_text((tiny / "dsgkd.json").read_text())
    return out


def measure(student_dir: Path, notes_csv: Path, test_csv: Path, n: int, folder: Path) -> dict:
    import pandas as pd

    test = pd.read_csv(test_csv)
    y, texts = test["LABEL"].to_numpy(), list(test["ER_DHX"])
    dirs = {"pytorch": student_dir}
    for kind in ("onnx", "onnx_int8"):
        dirs[kind] = export_onnx(student_dir, folder / f"{student_dir.parent.name}_{kind}", int8=kind == "onnx_int8")
    out, probs = {}, {}
    for kind, d in dirs.items():
        student = load_student(d, "cpu")
        started = time.perf_counter()
        predict_file(student, notes_csv, folder / "preds.csv", text_col="ER_DHX", log=lambda line: None)
        seconds = time.perf_counter() - started
        probs[kind] = predict_probs(student, texts)
        out[kind] = {"notes": n, "seconds": round(seconds, 2), "notes_per_s": round(n / seconds, 1),
                     "test_auroc": binary_metrics(y, probs[kind], student.threshold)["auroc"],
                     "model_mb": round(sum(f.stat().st_size for f in Path(d).glob("model*")) / 2**20, 1)}
    for kind in ("onnx", "onnx_int8"):
        out[kind]["speedup"] = round(out[kind]["notes_per_s"] / out["pytorch"]["notes_per_s"], 2)
        out[kind]["abs_delta_auroc"] = abs(out[kind]["test_auroc"] - out["pytorch"]["test_auroc"])
        out[kind]["max_abs_delta_prob"] = float(np.abs(probs[kind] - probs["pytorch"]).max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=10_000, help="notes scored per runtime, tiny student")
    ap.add_argument("--base-notes", type=int, default=10_000, help="notes scored per runtime, base-shaped student")
    ap.add_argument("--model", type=Path, help="a tiny student to use instead of training one")
    ap.add_argument("--test", type=Path, help="its labelled test file (ER_DHX, LABEL); with --model")
    ap.add_argument("--train-notes", type=int, default=1200, help="benchmark notes for the trained student")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny, test_csv = (args.model, args.test) if args.model else train_tiny(tmp, args.train_notes, args.epochs)
        result = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "students": {}}
        for name, make, n in (("tiny", lambda: tiny, args.notes),
                              ("base_shaped_random_init", lambda: base_shaped(tiny, tmp / "base" / "student"),
                               args.base_notes)):
            notes = tmp / f"notes_{n}.csv"
            write_table(generate_notes(n, seed=11)[["ER_DHX"]], notes)
            result["students"][name] = measure(make(), notes, test_csv, n, tmp)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
