"""Which words to distil, and where they sit in each model's tokens.

Teacher and student read the same note through different tokenizers (WordPiece, SentencePiece,
byte-level BPE; cased or NFD-normalising uncased). Re-tokenising a word in isolation gives pieces that
differ from the ones in context and breaks on Hangul that an uncased normaliser decomposes into jamo,
so the only safe bridge is the character offsets that fast tokenizers report for each token.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

Span = tuple[int, int]

_LATIN = "A-Za-z\u00C0-\u024F"
# A term starts with a Latin letter; letters and digits continue it; - / . are kept only between two
# letters/digits, so "Abd." -> "Abd", "r/o" and "T-tube" stay whole, "fever로" stops at the Hangul.
# Letters glued to a preceding digit ("3mg", "2T") are units of a number, not code-switched words.
_LATIN_TERM = re.compile(rf"(?<![{_LATIN}0-9])[{_LATIN}][{_LATIN}0-9]*(?:[-/.][{_LATIN}0-9]+)*")
_WORD = re.compile(r"\S+")

SELECTORS = ("latin", "all")


def find_terms(text: str, selector: str = "latin", max_terms: int = 32) -> list[Span]:
    """Character spans [start, end) of the words to distil, in text order, at most `max_terms`.

    `latin` is the paper's code-switched English (medical terms, abbreviations, vitals' labels);
    `all` takes every whitespace-separated word, prose included.
    """
    if selector == "latin":
        pattern = _LATIN_TERM
    elif selector == "all":
        pattern = _WORD
    else:
        raise ValueError(f"unknown term selector {selector!r}; expected one of {SELECTORS}")
    spans = []
    for m in pattern.finditer(text):
        if len(spans) == max_terms:
            break
        spans.append(m.span())
    return spans


def char_to_token_spans(offsets: Sequence[Sequence[int]], terms: Sequence[Span]) -> list[Span | None]:
    """Half-open token range [first, last + 1) overlapping each term; None when truncation cut the term.

    Tokens with empty offsets (special tokens, padding) never match. A term that ends after the last
    character any token covers was cut (or removed) by truncation: it is dropped rather than distilled
    from half a word.
    """
    starts, ends, index = [], [], []
    for i, (s, e) in enumerate(offsets):
        if e > s:
            starts.append(s)
            ends.append(e)
            index.append(i)
    covered_to = max(ends, default=0)
    out: list[Span | None] = []
    for a, b in terms:
        if b > covered_to:
            out.append(None)
            continue
        hits = [index[k] for k in range(len(index)) if starts[k] < b and ends[k] > a]
        out.append((hits[0], hits[-1] + 1) if hits else None)
    return out
