"""Layer maps: which teacher hidden state each student hidden state is pulled towards, as match records.

Indices count hidden states as Hugging Face returns them: 0 is the embedding output, n the last layer
of an n-layer encoder. A strategy is a string so a search space can name it as one categorical choice;
`LAYER_MAPS` lists them (add one with `@LAYER_MAPS.register("name")` on a function
`(teacher_layers, student_layers, arg) -> [(t, s), ...]`). Explicit pairs are written ``"0:0,6:2,12:4"``
or as a list of pairs. The default, `auto`, is the paper's `all` where the depths allow it and `uniform`
elsewhere, so a pair of unequal depths runs without naming a map; a run records the name it stood for.

Each KD term takes the pairs of the resolved map it compares (`KDTerm.layer_pairs`): hidden-state KD every
pair, attention KD the pairs with an attention on both sides (`attention_pairs`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from dsgkd.choices import LAYER_MAPS
from dsgkd.errors import UserError

LayerPairs = list[tuple[int, int]]
_EXPLICIT = re.compile(r"\s*\d+\s*:\s*\d+\s*(,\s*\d+\s*:\s*\d+\s*)*")


@LAYER_MAPS.register("all")
def all_layers(n_t: int, n_s: int, _arg: None) -> LayerPairs:
    """Index to index including embeddings (0..n); needs equal depth (the paper's setting)."""
    if n_t != n_s:
        raise UserError(f"layer_map 'all' needs equal depths (teacher {n_t}, student {n_s}); "
                        "use 'uniform', 'skip', 'last_k:K' or explicit pairs")
    return [(i, i) for i in range(n_s + 1)]


@LAYER_MAPS.register("uniform")
def uniform(n_t: int, n_s: int, _arg: None) -> LayerPairs:
    """Every student state j (0..n_s) to teacher state round(j * n_t / n_s)."""
    seen: set[tuple[int, int]] = set()
    pairs = [(round(j * n_t / n_s), j) for j in range(n_s + 1)]
    return [p for p in pairs if not (p in seen or seen.add(p))]


@LAYER_MAPS.register("skip")
def skip(n_t: int, n_s: int, _arg: None) -> LayerPairs:
    """Student layers 1..n_s to teacher layers k, 2k, ... with k = n_t // n_s (TinyBERT)."""
    k = n_t // n_s
    if k < 1:
        raise UserError(f"layer_map 'skip' needs a teacher at least as deep as the student "
                        f"(teacher {n_t}, student {n_s})")
    return [(j * k, j) for j in range(1, n_s + 1)]


@LAYER_MAPS.register("last_k", arg="K")
def last_k(n_t: int, n_s: int, arg: str) -> LayerPairs:
    """The last K student layers to the last K teacher layers."""
    if not arg.isdigit() or int(arg) < 1:
        raise UserError(f"layer_map 'last_k:{arg}': expected last_k:K with K >= 1")
    k = int(arg)
    if k > min(n_t, n_s):
        raise UserError(f"layer_map 'last_k:{arg}': K={k} exceeds the shallower depth {min(n_t, n_s)}")
    return [(n_t - i, n_s - i) for i in reversed(range(k))]


@LAYER_MAPS.register("first_last")
def first_last(n_t: int, n_s: int, _arg: None) -> LayerPairs:
    """Embeddings to embeddings and last to last."""
    return [(0, 0), (n_t, n_s)]


@LAYER_MAPS.register("auto")
def auto(n_t: int, n_s: int, _arg: None) -> LayerPairs:
    """'all' on equal depths (the paper), else 'uniform' (the default)."""
    return LAYER_MAPS[named_layer_map("auto", n_t, n_s)].fn(n_t, n_s, None)


def named_layer_map(spec: str | Sequence[Sequence[int]], teacher_layers: int,
                    student_layers: int) -> str | Sequence[Sequence[int]]:
    """`spec` with `auto` replaced by the strategy it stands for at these depths: what a run records, so its
    config says which map it used."""
    if spec != "auto":
        return spec
    return "all" if teacher_layers == student_layers else "uniform"


def resolve_layer_map(spec: str | Sequence[Sequence[int]], teacher_layers: int, student_layers: int) -> LayerPairs:
    """(teacher_state, student_state) pairs for encoders of the given depths; UserError when invalid."""
    if teacher_layers < 1 or student_layers < 1:
        raise UserError(f"layer_map: depths must be >= 1 (teacher {teacher_layers}, student {student_layers})")
    pairs = _build(spec, teacher_layers, student_layers)
    for t, s in pairs:
        if not (0 <= t <= teacher_layers and 0 <= s <= student_layers):
            raise UserError(
                f"layer_map {_show(spec)}: pair ({t}, {s}) out of range for teacher 0..{teacher_layers}, "
                f"student 0..{student_layers}")
    if not pairs:
        raise UserError(f"layer_map {_show(spec)}: no layer pairs")
    if len(set(pairs)) != len(pairs):
        raise UserError(f"layer_map {_show(spec)}: repeated pairs")
    return pairs


def is_valid(spec: str | Sequence[Sequence[int]], teacher_layers: int, student_layers: int) -> bool:
    try:
        resolve_layer_map(spec, teacher_layers, student_layers)
    except UserError:
        return False
    return True


def _build(spec, n_t: int, n_s: int) -> LayerPairs:
    if not isinstance(spec, str):
        try:
            return [(int(t), int(s)) for t, s in spec]
        except (TypeError, ValueError):
            raise UserError(f"layer_map {_show(spec)}: expected a list of [teacher, student] pairs") from None
    name, sep, arg = spec.strip().partition(":")
    entry = LAYER_MAPS.get(name)
    if entry is not None:
        if sep and entry.arg is None:
            raise UserError(f"layer_map {spec!r}: '{name}' takes no argument")
        return entry.fn(n_t, n_s, arg if entry.arg else None)
    if _EXPLICIT.fullmatch(spec):
        return [tuple(int(x) for x in p.split(":")) for p in spec.split(",")]
    raise UserError(f"layer_map {spec!r}: unknown; use one of {LAYER_MAPS.choices_text()} or 't:s,t:s' pairs")


def _show(spec) -> str:
    return repr(spec) if isinstance(spec, str) else str(list(spec))


# ------------------------------------------------------------------------------------------ attention
def attention_index(state: int) -> int | None:
    """Hidden state i comes out of transformer layer i, whose attention is `attentions[i - 1]`; the
    embeddings (state 0) have none. The one place that rule is written."""
    return state - 1 if state > 0 else None


def attention_pairs(pairs: Sequence[tuple[int, int]]) -> LayerPairs:
    """The pairs with an attention on both sides."""
    return [(t, s) for t, s in pairs if attention_index(t) is not None and attention_index(s) is not None]


def attention_states(states: Sequence[int]) -> list[int]:
    return sorted(x for x in states if attention_index(x) is not None)
