"""A model's shape, its depth and its length limit, from its config alone: what a run's checks need.

Answered without weights, and before anything slow: a stand-in's from its spec (nothing is built, nothing
heavy imported), a checkpoint's from config.json and tokenizer_config.json through the same local-first
path as loading (`dsgkd.models.hub`). A ref that is nowhere to be had fails before transformers is imported.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.models.hub import check_available, fetch, hub_status
from dsgkd.models.presets import ResolvedRef, resolve
from dsgkd.models.tiny import MODEL_MAX_LENGTH, TINY_SPECS, split_ref

# RoBERTa-style position ids start at padding_idx + 1, so that many position rows are never usable
_OFFSET_POSITION_FAMILIES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text"}
# tokenizers without a recorded limit report model_max_length as ~1e30
_SANE_MAX_LENGTH = 1_000_000


@dataclass(frozen=True)
class ModelShape:
    depth: int       # transformer layers: hidden states 0..depth are what layer maps index
    max_length: int  # longest input, special tokens included, that tokenizer and position table accept


def max_length_limit(config, tokenizer_max_length: int | None) -> int:
    """The longest input both the tokenizer (`model_max_length`) and the config's position table accept."""
    limits = []
    if 0 < (tokenizer_max_length or 0) < _SANE_MAX_LENGTH:
        limits.append(int(tokenizer_max_length))
    n_pos = getattr(config, "max_position_embeddings", None)
    if n_pos:
        offset = (config.pad_token_id or 0) + 1 if config.model_type in _OFFSET_POSITION_FAMILIES else 0
        limits.append(int(n_pos) - offset)
    if not limits:
        raise UserError(f"model {config.name_or_path!r}: neither the tokenizer nor the config gives a maximum length")
    return min(limits)


def _tokenizer_max_length(r: ResolvedRef) -> int | None:
    """`model_max_length` from tokenizer_config.json; many checkpoints record none, and a missing file is
    no error."""
    from transformers.utils import cached_file

    quiet = dict(_raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    path = cached_file(r.source, "tokenizer_config.json", local_files_only=True, **quiet)
    if path is None and r.kind != "dir" and hub_status(r.source) is None:
        path = cached_file(r.source, "tokenizer_config.json", **quiet)
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError) as e:
        raise UserError(f"model {r.ref!r}: unreadable tokenizer_config.json ({e})") from None


def model_shape(ref: str) -> ModelShape:
    """A stand-in's tokenizer and position table are built to MODEL_MAX_LENGTH (`dsgkd.models.build`)."""
    if stand_in := split_ref(ref):
        return ModelShape(TINY_SPECS[stand_in[0]].layers, MODEL_MAX_LENGTH)
    r = resolve(ref)
    check_available(r)
    from transformers import AutoConfig

    config = fetch(r, AutoConfig.from_pretrained)
    return ModelShape(int(config.num_hidden_layers), max_length_limit(config, _tokenizer_max_length(r)))


def model_depth(ref: str) -> int:
    return model_shape(ref).depth
