"""What a student directory must hold, checked before a note is scored: `dsgkd.json`, config.json, the weights and
the tokenizer.

A student is copied between machines and kept for years, and a bad copy rarely fails loudly: transformers fills
tensors a weights file lacks with random ones, a tokenizer folder without its vocabulary loads as five special
tokens that turn every note into [UNK], a NaN threshold in a hand-edited `dsgkd.json` labels every note 0, and a
truncated `model.safetensors` ends in a Rust traceback. Each of these is refused here in one line naming the file,
before the first note is read.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dsgkd import __version__
from dsgkd.core.long_notes import LONG_NOTES
from dsgkd.core.temperature import check_temperature
from dsgkd.errors import UserError
from dsgkd.redact import mask

STUDENT_META = "dsgkd.json"
# 2: the temperature. A dsgkd that reads only format 1 would ignore it and misread the threshold, so it must refuse.
META_FORMAT = 2
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
JSON_FILES = ("config.json", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json")
COPY_AGAIN = "copy the student directory again, whole"


def read_meta(where: Path) -> dict[str, Any]:
    """`dsgkd.json` checked field by field: a format this dsgkd reads, a threshold in [0, 1], positive lengths,
    the training data's column names and encoding, and a finite temperature > 0 (format 1, from before
    calibration, has none: temperature 1, the softmax as it was)."""
    path = where / STUDENT_META
    meta = _json(path)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(meta).__name__}; {COPY_AGAIN}")
    fmt = meta.get("format", 0)
    if not _is_int(fmt) or fmt < 0:
        raise UserError(f"{path}: format {fmt!r} is not a format number; {COPY_AGAIN}")
    if fmt > META_FORMAT:
        raise UserError(f"{path}: format {fmt} is newer than this dsgkd ({__version__}) reads; upgrade dsgkd")
    threshold = meta.get("threshold")
    if not _is_number(threshold) or not 0 <= threshold <= 1:
        raise UserError(f"{path}: threshold {threshold!r} must be a finite probability in [0, 1]; {COPY_AGAIN}")
    for key in ("max_length", "batch_size"):
        if not _is_int(meta.get(key)) or meta[key] < 1:
            raise UserError(f"{path}: {key} {meta.get(key)!r} must be a whole number >= 1; {COPY_AGAIN}")
    for key in ("text_col", "label_col", "encoding"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise UserError(f"{path}: {key} is missing or not a name; {COPY_AGAIN}")
    if meta.setdefault("long_notes", "truncate") not in LONG_NOTES:  # absent before long notes: truncated
        raise UserError(f"{path}: long_notes {mask(meta['long_notes'])} is not one of {', '.join(LONG_NOTES)}; "
                        f"{COPY_AGAIN}")
    if meta.get("classes") is not None and not isinstance(meta["classes"], list):
        raise UserError(f"{path}: classes must be a list of label values or null; {COPY_AGAIN}")
    try:
        meta["temperature"] = check_temperature(meta.get("temperature", 1.0), str(path))
    except ValueError as e:
        raise UserError(str(e)) from None
    return meta


def load_tokenizer(where: Path):
    """The student's tokenizer, refused when its files are missing or damaged, or when its vocabulary is larger than
    the model's embeddings (a tokenizer copied from another model)."""
    from transformers import AutoTokenizer

    if not (where / "tokenizer_config.json").is_file():
        raise UserError(f"{where}: no tokenizer here (tokenizer_config.json); copy the whole directory `dsgkd "
                        "train` or `dsgkd export-onnx` wrote")
    config = _config(where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
    except Exception as e:  # tokenizers and transformers raise many types for damaged files
        raise UserError(f"{where}: the tokenizer does not load ({_first_line(e)}); {COPY_AGAIN}") from None
    names = list(dict.fromkeys(tokenizer.vocab_files_names.values()))
    if not any((where / name).is_file() for name in names):
        raise UserError(f"{where}: the tokenizer's vocabulary is missing (none of {', '.join(names)}); {COPY_AGAIN}")
    vocab = config.get("vocab_size")
    if _is_int(vocab) and len(tokenizer) > vocab:
        raise UserError(f"{where}: the tokenizer has {len(tokenizer)} tokens but config.json's model {vocab}; "
                        f"not this student's tokenizer ({COPY_AGAIN})")
    return tokenizer


def load_classifier(where: Path, **kwargs):
    """The PyTorch classifier, refused when its weights file is damaged or lacks some of the model's tensors
    (transformers would start those from random values and score every note with them)."""
    from transformers import AutoModelForSequenceClassification

    from dsgkd.models.pooling import apply_saved_pooling

    _config(where)
    weights = next((where / name for name in WEIGHTS if (where / name).is_file()), None)
    if weights is None:
        raise UserError(f"{where}: no weights ({WEIGHTS[0]}); {COPY_AGAIN}")
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            where, local_files_only=True, output_loading_info=True, **kwargs)
    except Exception as e:  # safetensors, torch.load and transformers raise many types for a damaged file
        raise UserError(f"{weights}: damaged, truncated or another model's weights ({_first_line(e)}); "
                        f"{COPY_AGAIN}") from None
    lacking = list(info.get("missing_keys") or []) + list(info.get("mismatched_keys") or [])
    if lacking:
        raise UserError(f"{weights}: lacks or misshapes {len(lacking)} of the model's tensors; not this student's "
                        f"weights ({COPY_AGAIN})")
    return apply_saved_pooling(model)


def _config(where: Path) -> dict:
    """config.json and the tokenizer's JSON files parse (transformers' own errors do not say which file)."""
    if not (where / "config.json").is_file():
        raise UserError(f"{where}: no config.json; {COPY_AGAIN}")
    parsed = {name: _json(where / name) for name in JSON_FILES if (where / name).is_file()}
    config = parsed["config.json"]
    if not isinstance(config, dict) or "model_type" not in config:
        raise UserError(f"{where / 'config.json'}: not a Hugging Face model config (no model_type); {COPY_AGAIN}")
    return config


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing; {COPY_AGAIN}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{path}: not readable JSON ({_first_line(e)}); {COPY_AGAIN}") from None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
