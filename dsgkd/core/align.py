"""Which words to distil, and where they sit in each model's tokens.

Teacher and student read the same note through different tokenizers (WordPiece, SentencePiece,
byte-level BPE; cased or NFD-normalising uncased). Re-tokenising a word in isolation gives pieces that
differ from the ones in context and breaks on Hangul that an uncased normaliser decomposes into jamo,
so the only safe bridge is the character offsets that fast tokenizers report for each token.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from dsgkd.errors import UserError
from dsgkd.choices import SELECTORS
from dsgkd.storage import content_key

Span = tuple[int, int]

_LATIN = "A-Za-z\u00C0-\u024F"
# A term starts with a Latin letter; letters and digits continue it; - / . are kept only between two
# letters/digits, so "Abd." -> "Abd", "r/o" and "T-tube" stay whole, "fever로" stops at the Hangul.
# Letters glued to a preceding digit ("3mg", "2T") are units of a number, not code-switched words.
_LATIN_TERM = re.compile(rf"(?<![{_LATIN}0-9])[{_LATIN}][{_LATIN}0-9]*(?:[-/.][{_LATIN}0-9]+)*")
_WORD = re.compile(r"\S+")

# `distill.selector`: each entry returns the pattern whose matches are the words to distil
LEXICON_PREFIX = "lexicon:"


@SELECTORS.register("latin")
def latin_words(_arg: None = None) -> re.Pattern:
    """Latin-script words: the paper's code-switched English (terms, abbreviations, vitals' labels)."""
    return _LATIN_TERM


@SELECTORS.register("all")
def all_words(_arg: None = None) -> re.Pattern:
    """Every whitespace-separated word, Korean prose included."""
    return _WORD


@SELECTORS.register("lexicon", arg="<file>")
def lexicon_words(source: str) -> re.Pattern:
    """Only the terms a lexicon lists (one per line; `lexicon:embedded` = the synthetic benchmark's)."""
    return _lexicon_pattern(source)


def embedded_lexicon() -> list[str]:
    """The default synthetic world's clinical terms (the ones whose meaning sets the label): an oracle."""
    from dsgkd.data.world import get_world

    return [t.name for t in get_world().terms]


@functools.lru_cache(maxsize=8)
def lexicon_terms(source: str) -> tuple[str, ...]:
    """`embedded`, or a UTF-8 file with one term per line (blank lines and `#` comments skipped)."""
    if source == "embedded":
        return tuple(embedded_lexicon())
    path = Path(source)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: lexicon file not found (distill.selector: lexicon:{source})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: lexicon is not UTF-8 text") from None
    terms = tuple(t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#"))
    if not terms:
        raise UserError(f"{path}: lexicon has no terms")
    return terms


@functools.lru_cache(maxsize=8)
def _lexicon_pattern(source: str) -> re.Pattern:
    """Case-sensitive ("AGE" is a diagnosis, "age" is not), longest term first so "otitis media" wins
    over "otitis", whole words only, any run of whitespace inside a multi-word term. A term starts where no
    letter of its own script precedes it, whatever the script ("sepsis로", "r/o СЕПСИС"); a Latin one also
    ends at its script's edge, one in another script may run on into a particle or inflection of that script
    ("장염으로", "СЕПСИСА"), as Korean and Cyrillic words do."""
    terms = sorted(set(lexicon_terms(source)), key=len, reverse=True)
    starts = [_edge_letters(t[0]) for t in terms]
    latin_ends = [_edge_letters(t[-1]) == _LATIN for t in terms]
    if all(a == _LATIN for a in starts) and all(latin_ends):
        body = "|".join(map(_term_body, terms))
        return re.compile(rf"(?<![{_LATIN}0-9])(?:{body})(?![{_LATIN}0-9])")
    return re.compile("|".join(rf"(?<![{a}0-9]){_term_body(t)}" + (rf"(?![{_LATIN}0-9])" if end else "")
                               for t, a, end in zip(terms, starts, latin_ends)))


def _term_body(term: str) -> str:
    return r"\s+".join(map(re.escape, term.split()))


def _edge_letters(ch: str) -> str:
    """The letters a term that starts or ends with `ch` must not touch: those of ch's script (Latin for a
    digit or a sign, as before scripts were told apart)."""
    if not ch.isalpha() or ch.isascii():
        return _LATIN
    return _script_class(unicodedata.name(ch, "LATIN").split(" ", 1)[0])


@functools.lru_cache(maxsize=16)
def _script_class(script: str) -> str:
    """A character-class body of every BMP letter whose Unicode name starts with `script` (CYRILLIC, HANGUL)."""
    if script == "LATIN":
        return _LATIN
    codes = [c for c in range(0x10000) if chr(c).isalpha() and unicodedata.name(chr(c), "").startswith(script + " ")]
    ranges, start = [], codes[0]
    for prev, cur in zip(codes, codes[1:] + [None]):
        if cur != prev + 1:
            ranges.append(f"\\u{start:04X}" if start == prev else f"\\u{start:04X}-\\u{prev:04X}")
            start = cur
    return "".join(ranges)


def selector_identity(selector: str) -> str:
    """The selector as a cache key: a lexicon file stands for its content, so editing it invalidates caches."""
    if not selector.startswith(LEXICON_PREFIX):
        return selector
    return LEXICON_PREFIX + content_key(lexicon_terms(selector.removeprefix(LEXICON_PREFIX)))


def find_terms(text: str, selector: str = "latin", max_terms: int = 32) -> list[Span]:
    """Character spans [start, end) of the words to distil (a `SELECTORS` spelling), in text order, at most
    `max_terms`. A lexicon spends KD on the words that carry meaning rather than on vitals' labels."""
    entry, arg = SELECTORS.lookup(selector)
    pattern = entry.fn(arg)
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
