"""Notes longer than `max_length`: which text each example sees, and how a note's score is pooled from them.

Real triage notes run past 512 tokens (history, course, exam, plan), and a term past the cut is lost to the task
and to KD alike. `train.long_notes` says what a run does with them, the same in training, validation, test,
`dsgkd evaluate` and `dsgkd predict` (recorded in `dsgkd.json`):

- `truncate`: the note as it is; the tokenizer cuts it at `max_length` (dsgkd's behaviour before this choice).
- `head_tail`: the note's first and last tokens, half the budget each, joined: the presenting complaint and the
  plan survive, the middle is cut. One example per note.
- `windows`: overlapping windows of `max_length` tokens (a quarter of each overlaps the next) that cover the whole
  note. Each window is an example with its note's label (unlabelled for transfer notes), so every term in every
  window is distilled. A note's logits are those of its window with the largest positive margin (logit 1 −
  logit 0): the decisive finding of a long note sits in one window, and a mean would dilute it by the number of
  windows. Max over more windows shifts scores upwards; the threshold chosen on validation (pooled the same way)
  absorbs that, and ranking within notes of one length is unaffected.

Pieces are cut from the student tokenizer's offsets and snapped to whitespace, so no word is split between two
pieces and each piece is plain text: both tokenizers, the term finder and a teacher cache see pieces exactly as
they see notes. A few tokens of margin cover a piece re-tokenising a little longer than it was cut.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LONG_NOTES = ("truncate", "head_tail", "windows")
CHUNK = 1024  # notes per tokenizer call
MARGIN = 2    # tokens kept free: a piece re-tokenised on its own may take one or two more than it was cut from
JOIN = " … "  # between head and tail, so the reader sees where the middle was cut


@dataclass(frozen=True)
class Pieces:
    """What the model reads: `texts[k]` is a piece of note `note[k]`; notes come in order, each with ≥ 1 piece."""

    texts: list[str]
    note: np.ndarray
    n_notes: int

    @property
    def split(self) -> bool:
        """Whether some note became more than one example (only then do logits need pooling)."""
        return len(self.texts) != self.n_notes

    def expand(self, values: Sequence) -> list:
        """A per-note value (a label) repeated for each of its pieces."""
        return [values[i] for i in self.note]


def split_notes(texts: Sequence[str], tokenizer, max_length: int, mode: str = "truncate") -> Pieces:
    """The pieces of each note under `mode` (see the module docstring)."""
    if mode not in LONG_NOTES:
        raise ValueError(f"long_notes {mode!r}: expected one of {', '.join(LONG_NOTES)}")
    texts = list(texts)
    if mode == "truncate":
        return Pieces(texts, np.arange(len(texts)), len(texts))
    budget = max(max_length - tokenizer.num_special_tokens_to_add() - MARGIN, 4)
    pieces, note = [], []
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        offsets = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for i, (text, spans) in enumerate(zip(chunk, offsets)):
            cut = _head_tail(text, spans, budget) if mode == "head_tail" else _windows(text, spans, budget)
            pieces += cut
            note += [start + i] * len(cut)
    return Pieces(pieces, np.asarray(note, dtype=np.int64), len(texts))


def _head_tail(text: str, spans: Sequence[tuple[int, int]], budget: int) -> list[str]:
    if len(spans) <= budget:
        return [text]
    head_end = _snap_end(text, spans[budget // 2 - 1][1])
    tail_start = _snap_start(text, spans[len(spans) - (budget - budget // 2)][0])
    return [text[:head_end].rstrip() + JOIN + text[tail_start:].lstrip()]


def _windows(text: str, spans: Sequence[tuple[int, int]], budget: int) -> list[str]:
    n = len(spans)
    if n <= budget:
        return [text]
    stride = budget - budget // 4
    starts = list(range(0, n - budget, stride)) + [n - budget]
    out = []
    for s in starts:
        lo, hi = spans[s][0], spans[s + budget - 1][1]
        if s > 0 and _snap_start(text, lo) < hi:  # a run with no space to snap to is cut where it is
            lo = _snap_start(text, lo)
        if s + budget < n and _snap_end(text, hi) > lo:
            hi = _snap_end(text, hi)
        out.append(text[0 if s == 0 else lo:len(text) if s + budget >= n else hi].strip())
    return out


def _snap_start(text: str, pos: int) -> int:
    """`pos`, moved forward past the rest of a word it falls inside (a word is never split between pieces)."""
    if pos == 0 or text[pos - 1].isspace():
        return pos
    nxt = next((j for j in range(pos, len(text)) if text[j].isspace()), len(text))
    return nxt


def _snap_end(text: str, pos: int) -> int:
    """`pos`, moved back to before a word it falls inside."""
    if pos >= len(text) or text[pos].isspace():
        return pos
    prev = next((j for j in range(pos - 1, -1, -1) if text[j].isspace()), 0)
    return prev if prev > 0 else pos


def pool_logits(logits: np.ndarray, pieces: Pieces) -> np.ndarray:
    """Per-note logits: each note's piece with the largest positive margin (every logit of a note untouched
    when it is one piece)."""
    if not pieces.split:
        return logits
    margin = logits[:, -1] - logits[:, 0]
    order = np.lexsort((margin, pieces.note))  # by note, then margin: each note's best piece is its last
    last = np.r_[pieces.note[order][1:] != pieces.note[order][:-1], True]
    return logits[order[last]]


def note_labels(labels: Sequence[int], pieces: Pieces) -> np.ndarray:
    """Per-note labels from per-piece ones (each piece carries its note's)."""
    labels = np.asarray(labels)
    if not pieces.split:
        return labels
    first = np.r_[True, pieces.note[1:] != pieces.note[:-1]]
    return labels[first]
