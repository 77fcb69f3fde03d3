"""Tokenizer and classifier from any REF, with the guarantees the distillation relies on.

- Fast tokenizers only: term alignment needs `offset_mapping`, which slow tokenizers cannot give.
- The local Hugging Face cache is tried before the network, so a cached model never waits on a hub
  that is unreachable (a failed hub lookup retries for ~30 s); a missing model is one `UserError` line.
- `trust_remote_code` stays off unless the caller asks: a model id from a config file must not run code.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import transformers
from huggingface_hub import constants as hf_constants
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerFast

from dsgkd.errors import UserError
from dsgkd.models.registry import PRESETS, ResolvedRef, known_names, resolve
from dsgkd.models.tiny import TINY_SPECS, ensure_tiny

T = TypeVar("T")

# RoBERTa-style position ids start at padding_idx + 1, so that many position rows are never usable
_OFFSET_POSITION_FAMILIES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text"}
# tokenizers without a recorded limit report model_max_length as ~1e30
_SANE_MAX_LENGTH = 1_000_000


def _not_available(r: ResolvedRef) -> UserError:
    if r.kind == "preset":
        return UserError(f"model {r.ref!r} ({r.source}): not in the local Hugging Face cache and not downloadable "
                         "(no network here); download it first or pass a local directory")
    hint = "" if "/" in r.ref else f" (presets: {', '.join(known_names())})"
    return UserError(f"model {r.ref!r}: not a preset, not a local directory, and not available offline "
                     f"(no network here); download it first or pass a local directory{hint}")


def _local(ref: str) -> ResolvedRef:
    """Resolve, building a stand-in once so tokenizer, config and weights all come from one directory."""
    r = resolve(ref)
    return ResolvedRef(r.ref, "dir", str(ensure_tiny(r.ref)), r.family) if r.kind == "tiny" else r


def _fetch(r: ResolvedRef, load: Callable[..., T], **kwargs) -> T:
    """Call a `from_pretrained` on the resolved source: cache first, then the hub when allowed."""
    if r.kind == "dir":
        try:
            return load(r.source, local_files_only=True, **kwargs)
        except (OSError, ValueError) as e:  # missing files; unknown model type or no classification head
            raise UserError(f"model {r.ref!r}: cannot load from the directory: {str(e).splitlines()[0]}") from None
    try:
        return load(r.source, local_files_only=True, **kwargs)
    except OSError:
        if hf_constants.is_offline_mode():
            raise _not_available(r) from None
    try:
        return load(r.source, **kwargs)
    except OSError:
        raise _not_available(r) from None


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
    tok = _fetch(r, AutoTokenizer.from_pretrained, trust_remote_code=trust_remote_code, **fixes)
    return tok if tok.is_fast else _to_fast(r.ref, tok)


def load_tokenizer(ref: str, *, trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    return _tokenizer(_local(ref), trust_remote_code)


def _config(r: ResolvedRef, trust_remote_code: bool, **overrides) -> transformers.PretrainedConfig:
    return _fetch(r, AutoConfig.from_pretrained, trust_remote_code=trust_remote_code, **overrides)


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
        model = _fetch(r, AutoModelForSequenceClassification.from_pretrained, num_labels=num_labels,
                       attn_implementation=attn, use_safetensors=None, ignore_mismatched_sizes=True,
                       trust_remote_code=trust_remote_code)
    return tokenizer, model


ModelOrConfig = transformers.PreTrainedModel | transformers.PretrainedConfig


def _cfg(model: ModelOrConfig) -> transformers.PretrainedConfig:
    """Shape questions need only the config, so a cached teacher's shape is known without its weights."""
    return getattr(model, "config", model)


def encoder_depth(model: ModelOrConfig) -> int:
    return int(_cfg(model).num_hidden_layers)


def encoder_width(model: ModelOrConfig) -> int:
    return int(_cfg(model).hidden_size)


def max_positions(tokenizer: PreTrainedTokenizerFast, model: ModelOrConfig) -> int:
    """The longest input (special tokens included) both the tokenizer and the position table accept."""
    limits = []
    if 0 < (tokenizer.model_max_length or 0) < _SANE_MAX_LENGTH:
        limits.append(int(tokenizer.model_max_length))
    config = _cfg(model)
    n_pos = getattr(config, "max_position_embeddings", None)
    if n_pos:
        offset = (config.pad_token_id or 0) + 1 if config.model_type in _OFFSET_POSITION_FAMILIES else 0
        limits.append(int(n_pos) - offset)
    if not limits:
        raise UserError(f"model {config.name_or_path!r}: neither the tokenizer nor the config gives a maximum length")
    return min(limits)


def model_depth(ref: str) -> int:
    """Encoder depth from the model's config alone (a stand-in's from its spec, before it is built)."""
    r = resolve(ref)
    if r.kind == "tiny":
        return TINY_SPECS[r.ref].layers
    return int(load_config(ref).num_hidden_layers)
