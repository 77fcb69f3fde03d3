"""Layer maps: which teacher hidden state each student hidden state is pulled towards.

Indices count hidden states as Hugging Face returns them: 0 is the embedding output, n the last layer
of an n-layer encoder. A strategy is a string so a search space can name it as one categorical choice:

- ``all``          index to index including embeddings (0..n); needs equal depth (the paper's setting)
- ``uniform``      every student state j (0..n_s) to teacher state round(j * n_t / n_s)
- ``skip``         student layers 1..n_s to teacher layers k, 2k, ... with k = n_t // n_s (TinyBERT)
- ``last_k:K``     the last K student layers to the last K teacher layers
- ``first_last``   embeddings to embeddings and last to last
- ``"0:0,6:2,12:4"`` or a list of pairs: explicit (teacher, student) pairs
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from dsgkd.errors import UserError

STRATEGIES = ("all", "uniform", "skip", "last_k", "first_last")
LayerPairs = list[tuple[int, int]]


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
    name, _, arg = spec.strip().partition(":")
    if name == "all":
        if n_t != n_s:
            raise UserError(f"layer_map 'all' needs equal depths (teacher {n_t}, student {n_s}); "
                            "use 'uniform', 'skip', 'last_k:K' or explicit pairs")
        return [(i, i) for i in range(n_s + 1)]
    if name == "uniform":
        return _dedupe([(round(j * n_t / n_s), j) for j in range(n_s + 1)])
    if name == "skip":
        k = n_t // n_s
        if k < 1:
            raise UserError(f"layer_map 'skip' needs a teacher at least as deep as the student "
                            f"(teacher {n_t}, student {n_s})")
        return [(j * k, j) for j in range(1, n_s + 1)]
    if name == "last_k":
        if not arg.isdigit() or int(arg) < 1:
            raise UserError(f"layer_map {spec!r}: expected last_k:K with K >= 1")
        k = int(arg)
        if k > min(n_t, n_s):
            raise UserError(f"layer_map {spec!r}: K={k} exceeds the shallower depth {min(n_t, n_s)}")
        return [(n_t - i, n_s - i) for i in reversed(range(k))]
    if name == "first_last":
        return [(0, 0), (n_t, n_s)]
    if re.fullmatch(r"\s*\d+\s*:\s*\d+\s*(,\s*\d+\s*:\s*\d+\s*)*", spec):
        return [tuple(int(x) for x in p.split(":")) for p in spec.split(",")]
    raise UserError(f"layer_map {spec!r}: unknown; use one of {', '.join(STRATEGIES)} or 't:s,t:s' pairs")


def _dedupe(pairs: LayerPairs) -> LayerPairs:
    seen: set[tuple[int, int]] = set()
    return [p for p in pairs if not (p in seen or seen.add(p))]


def _show(spec) -> str:
    return repr(spec) if isinstance(spec, str) else str(list(spec))
