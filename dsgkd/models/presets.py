"""What a model reference means, decided without touching weights or the network.

A REF in a config or on the command line is a preset name, a local directory or a hub id. Deciding
which one it is up front lets errors name the user's own spelling, and lets `load` choose between
building a stand-in, reading a directory, or going through the Hugging Face cache.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dsgkd.errors import UserError
from dsgkd.models.tiny import TINY_SPECS, split_ref, tiny_dir


@dataclass(frozen=True)
class Preset:
    """A real checkpoint on the hub; `family` is its Hugging Face `model_type`. `tokenizer_kwargs`
    correct checkpoints whose hub files get their tokenizer wrong: BioBERT-cased and ClinicalBERT ship
    no tokenizer_config.json, so BertTokenizer's default `do_lower_case=True` would lowercase input
    for a cased vocabulary (dmis-lab/biobert-pytorch#24, EmilyAlsentzer/clinicalBERT#26)."""

    hub_id: str
    family: str
    note: str = ""
    tokenizer_kwargs: dict = field(default_factory=dict)


# kobert: `skt/kobert-base-v1`, the paper's KoBERT, ships only a SentencePiece tokenizer behind remote code
# (`trust_remote_code`, a slow XLNet-style class), so it has no fast tokenizer and no offsets; the preset
# points at `kykim/bert-kor-base`, a standard WordPiece BERT trained on Korean. Pass the skt id explicitly
# (with trust_remote_code) to try the original.
PRESETS: dict[str, Preset] = {
    "kmbert": Preset("madatnlp/km-bert", "bert", "Korean medical BERT (teacher)"),
    "biobert": Preset("dmis-lab/biobert-base-cased-v1.2", "bert", "biomedical English BERT, cased (teacher)",
                      {"do_lower_case": False}),
    "clinicalbert": Preset("emilyalsentzer/Bio_ClinicalBERT", "bert", "clinical English BERT, cased (teacher)",
                           {"do_lower_case": False}),
    "xlmr": Preset("FacebookAI/xlm-roberta-base", "xlm-roberta", "multilingual SentencePiece (student)"),
    "kobert": Preset("kykim/bert-kor-base", "bert", "Korean WordPiece BERT (student)"),
    "mbert": Preset("google-bert/bert-base-multilingual-cased", "bert", "multilingual BERT, cased"),
}

Kind = Literal["tiny", "preset", "dir", "hub"]


@dataclass(frozen=True)
class ResolvedRef:
    """`source` is the hub id or the local directory; for a stand-in, the directory it is (or will be)
    built in: building is `load`'s job, so resolving stays cheap."""

    ref: str
    kind: Kind
    source: str
    family: str


def known_names() -> list[str]:
    return [*PRESETS, *TINY_SPECS]


def _looks_like_path(ref: str) -> bool:
    # hub ids are `name` or `owner/name`; anything else with separators was meant as a directory
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref


def _family_from_config(config_json: Path) -> str:
    try:
        return str(json.loads(config_json.read_text(encoding="utf-8")).get("model_type", "unknown"))
    except (OSError, ValueError) as e:
        raise UserError(f"model directory {config_json.parent}: unreadable config.json ({e})") from None


def presets_hint(ref: str) -> str:
    """A bare name that is no preset is most likely a misspelt one; an `owner/name` is meant as a hub id."""
    return "" if "/" in ref else f" (presets: {', '.join(known_names())})"


def _cached_family(hub_id: str) -> str:
    """The family of a hub model if its config is already in the local HF cache; never downloads. A string
    that cannot be a repo id fails here, before anything asks the cache or the hub about it."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        hit = try_to_load_from_cache(hub_id, "config.json")
    except HFValidationError as e:
        raise UserError(f"model {hub_id!r}: not a preset, not a local directory, and not a valid hub id "
                        f"({str(e).splitlines()[0]}){presets_hint(hub_id)}") from None
    return _family_from_config(Path(hit)) if isinstance(hit, str) else "unknown"


def resolve(ref: str) -> ResolvedRef:
    if stand_in := split_ref(ref):
        return ResolvedRef(ref, "tiny", str(tiny_dir(ref)), TINY_SPECS[stand_in[0]].family)
    if ref in PRESETS:
        p = PRESETS[ref]
        return ResolvedRef(ref, "preset", p.hub_id, p.family)
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model {ref!r}: directory has no config.json (not a Hugging Face model directory)")
        return ResolvedRef(ref, "dir", str(path.resolve()), _family_from_config(path / "config.json"))
    if _looks_like_path(ref) or path.exists():
        raise UserError(f"model {ref!r}: not an existing model directory")
    return ResolvedRef(ref, "hub", ref, _cached_family(ref))
