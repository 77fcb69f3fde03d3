"""Tokenizer and classifier from any REF, with the guarantees the distillation relies on.

- Fast tokenizers only: term alignment needs `offset_mapping`, which slow tokenizers cannot give.
- Local files before the network, and the network only for a repo the hub says exists (`dsgkd.models.hub`):
  a cached model never waits on an unreachable hub, and a missing one is one `UserError` line at once.
- `trust_remote_code` stays off unless the caller asks: a model id from a config file must not run code.
"""
from __future__ import annotations

import transformers
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerFast

from dsgkd.errors import UserError
from dsgkd.models.hub import fetch
from dsgkd.models.pooling import apply_saved_pooling
from dsgkd.models.presets import PRESETS, ResolvedRef, resolve
from dsgkd.models.tiny import ensure_tiny


def _local(ref: str) -> ResolvedRef:
    """Resolve, building a stand-in once so tokenizer, config and weights all come from one directory."""
    r = resolve(ref)
    return ResolvedRef(r.ref, "dir", str(ensure_tiny(r.ref)), r.family) if r.kind == "tiny" else r


def _to_fast(ref: str, tok) -> PreTrainedTokenizerFast:
    """Convert a slow (Python / SentencePiece) tokenizer, keeping its special tokens and length limit."""
    from transformers.convert_slow_tokenizer import convert_slow_tokenizer

    try:
        backend = convert_slow_tokenizer(tok)
    except Exception:  # converters raise ValueError, KeyError, ImportError... all mean "no fast form"
        raise UserError(f"model {ref!r}: tokenizer {type(tok).__name__} is slow-only and has no converter to a "
                        "fast tokenizer (term alignment needs offset mappings)") from None
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=tok.model_max_length,
                                   **tok.special_tokens_map)


def _tokenizer(r: ResolvedRef, trust_remote_code: bool) -> PreTrainedTokenizerFast:
    fixes = PRESETS[r.ref].tokenizer_kwargs if r.kind == "preset" else {}
    tok = fetch(r, AutoTokenizer.from_pretrained, trust_remote_code=trust_remote_code, **fixes)
    return tok if tok.is_fast else _to_fast(r.ref, tok)


def load_tokenizer(ref: str, *, trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    return _tokenizer(_local(ref), trust_remote_code)


def _config(r: ResolvedRef, trust_remote_code: bool, **overrides) -> transformers.PretrainedConfig:
    return fetch(r, AutoConfig.from_pretrained, trust_remote_code=trust_remote_code, **overrides)


def load_config(ref: str, *, trust_remote_code: bool = False) -> transformers.PretrainedConfig:
    """Depth, width and family without loading weights, through the same cache-first path."""
    return _config(_local(ref), trust_remote_code)


def load_classifier(ref: str, num_labels: int = 2, *, random_init: bool = False, output_attentions: bool = False,
                    trust_remote_code: bool = False) -> tuple[PreTrainedTokenizerFast, transformers.PreTrainedModel]:
    """Eager attention when attentions are needed (fused SDPA kernels never materialise the
    probabilities attention KD compares). `random_init` keeps the architecture and tokenizer but
    draws fresh weights from the caller's torch RNG: the knowledge-free control."""
    r = _local(ref)
    tokenizer = _tokenizer(r, trust_remote_code)
    attn = "eager" if output_attentions else "sdpa"
    if random_init:
        config = _config(r, trust_remote_code, num_labels=num_labels)
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation=attn,
                                                               trust_remote_code=trust_remote_code)
    else:
        # use_safetensors=None: safetensors when the checkpoint has them, .bin only as the fallback;
        # a classifier checkpoint with another label count gets a fresh head instead of an error
        model = fetch(r, AutoModelForSequenceClassification.from_pretrained, num_labels=num_labels,
                      attn_implementation=attn, use_safetensors=None, ignore_mismatched_sizes=True,
                      trust_remote_code=trust_remote_code)
    return tokenizer, apply_saved_pooling(model)


ModelOrConfig = transformers.PreTrainedModel | transformers.PretrainedConfig


def _cfg(model: ModelOrConfig) -> transformers.PretrainedConfig:
    """Shape questions need only the config, so a cached teacher's shape is known without its weights."""
    return getattr(model, "config", model)


def encoder_depth(model: ModelOrConfig) -> int:
    return int(_cfg(model).num_hidden_layers)


def encoder_width(model: ModelOrConfig) -> int:
    return int(_cfg(model).hidden_size)
