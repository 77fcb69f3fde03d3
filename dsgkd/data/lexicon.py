"""Mine a term lexicon from what a user has: their notes and an unlabelled domain corpus, never a term list.

`lexicon:embedded` reads the synthetic world's terms, an oracle no real user has; `latin` takes every
Latin-script word, so most of what it distils is vitals' labels and abbreviations (SpO2, BT, r/o). A domain
term has a signature that needs no list and no script: it is *about the domain*, so the domain corpus names
it far more often, relative to its size, than the notes do; and each term is *rare in the notes* (a patient
has a few of a long tail), while vitals' labels, abbreviations, symptoms and boilerplate sit in a large share
of them. Words a note glues to a term (Korean particles: "sepsis로") are split off at any change of script,
whichever the scripts are, and a word that is nearly always followed by the same word ("Kawasaki disease",
"otitis media") is kept with it as one multi-word unit. The mined list goes to `lexicon:<file>`, so the
training path is the one an expert's list takes.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

# alphanumeric runs; - / . ' are kept between two alphanumerics ("r/o", "T-tube", "COVID-19")
_RUN = re.compile(r"[^\W_]+(?:[-/.'][^\W_]+)*")


def _script(ch: str) -> str | None:
    """The script a letter belongs to (LATIN, HANGUL, CYRILLIC, ...), None for digits and marks: they join
    whichever script they stand beside."""
    if not ch.isalpha():
        return None
    if ch.isascii():
        return "LATIN"
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else None


def words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) for every word: alphanumeric runs, cut where the script changes, so a term
    glued to a particle of another script comes out alone ("sepsis로" -> "sepsis", "로") whatever the scripts."""
    out = []
    for m in _RUN.finditer(text):
        s, e = m.span()
        token = m.group()
        if token.isascii():
            out.append((s, e, token))
            continue
        start, current = s, None
        for i, ch in enumerate(token, s):
            sc = _script(ch)
            if sc is None:
                continue
            if current is not None and sc != current:
                out.append((start, i, text[start:i]))
                start = i
            current = sc
        out.append((start, e, text[start:e]))
    return out


Joins = list[set[tuple[str, str]]]   # per round, the case-folded (left, right) pairs that are one unit


def _merge(text: str, tokens: list[tuple[int, int, str]], pairs: set[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Tokens with each joined pair (whitespace between) made one, left to right."""
    out = []
    for s, e, w in tokens:
        if out and (out[-1][2].casefold(), w.casefold()) in pairs and text[out[-1][1]:s].isspace():
            out[-1] = (out[-1][0], e, f"{out[-1][2]} {w}")
        else:
            out.append((s, e, w))
    return out


def _tokens(text: str, joins: Joins) -> list[tuple[int, int, str]]:
    """The text's units: its words, joined round by round."""
    tokens = words(text)
    for pairs in joins:
        tokens = _merge(text, tokens, pairs)
    return tokens


def _units(text: str, joins: Joins) -> list[str]:
    return [u for _, _, u in _tokens(text, joins)]


@dataclass(frozen=True)
class MiningSettings:
    """Thresholds, each a property of terms rather than of one data set (see the module docstring)."""

    max_note_share: float = 0.10   # in more notes than this: vitals, abbreviations, symptoms, boilerplate
    max_corpus_share: float = 0.05  # in more corpus sentences than this: the corpus's own function words
    min_contrast: float = -0.5     # log(corpus rate / note rate), per word: not named far less in domain text
    min_corpus_docs: int = 3       # named in at least this many corpus sentences
    template_share: float = 0.6    # one neighbour in this share of its note occurrences: a fixed phrase
    template_min_uses: int = 20    # ... judged only with this many occurrences
    join_share: float = 0.8        # a word followed by the same word this often is one unit with it
    join_min_count: int = 5
    join_rounds: int = 2
    min_chars: int = 2


@dataclass(frozen=True)
class Candidate:
    unit: str
    note_docs: int
    corpus_docs: int
    contrast: float
    fixed: float        # the share of its note occurrences beside its most frequent neighbour
    kept: bool


def _joins(texts: Sequence[str], settings: MiningSettings) -> Joins:
    """Pairs of units that are one unit: the second follows the first (after whitespace, in the same script) in
    at least `join_share` of the first's occurrences ("Kawasaki disease"), or the first precedes the second in
    that share of the second's ("common cold"), counted over notes and corpus together, case-folded (a corpus
    sentence capitalises its first word: "Mild dehydration is ..."). A second round joins what the first left:
    once "viral exanthem" is one unit, the remaining "viral" is always "viral syndrome"."""
    joins: Joins = []
    for _ in range(settings.join_rounds):
        count, follow, precede = Counter(), defaultdict(Counter), defaultdict(Counter)
        for text in texts:
            tokens = _tokens(text, joins)
            for k, (_, e, w) in enumerate(tokens):
                w = w.casefold()
                count[w] += 1
                if k + 1 < len(tokens):
                    s2, _, w2 = tokens[k + 1]
                    w2 = w2.casefold()
                    if text[e:s2].isspace() and _script(w[-1]) == _script(w2[0]):
                        follow[w][w2] += 1
                        precede[w2][w] += 1
        pairs = set()
        for w, n in count.items():
            if n < settings.join_min_count:
                continue
            for table, pair in ((follow, lambda o: (w, o)), (precede, lambda o: (o, w))):
                if table[w]:
                    other, k = table[w].most_common(1)[0]
                    if k >= settings.join_share * n and other != w:
                        pairs.add(pair(other))
        if not pairs:
            break
        joins.append(pairs)
    return joins


@dataclass
class _Counts:
    docs: Counter = field(default_factory=Counter)       # texts a unit occurs in
    uses: Counter = field(default_factory=Counter)       # its occurrences
    beside: dict = field(default_factory=lambda: defaultdict(Counter))  # ("<"|">", neighbour) -> occurrences
    words: int = 0


def _count(texts: Sequence[str], joins: Joins, *, notes: bool) -> _Counts:
    """Document and occurrence counts per unit, and for the notes each unit's neighbours. In the corpus a
    sentence's capitalised first unit counts as its lower-case form where that form occurs elsewhere
    ("Sepsis requires ..." is "sepsis"; "Kawasaki disease is ..." and "AGE is ..." stay as they are)."""
    c, first = _Counts(), []
    for text in texts:
        units = _units(text, joins)
        if not units:
            continue
        c.words += len(units)
        if not notes and units[0][:1].isupper() and not units[0].isupper():
            first.append(units[0])
            units = units[1:]
            c.docs.update(set(units) - {_uncap(first[-1])})
        else:
            c.docs.update(set(units))
        c.uses.update(units)
        if notes:
            for i, u in enumerate(units):
                c.beside[u]["<", units[i - 1] if i else ""] += 1
                c.beside[u][">", units[i + 1] if i + 1 < len(units) else ""] += 1
    for u in first:
        key = _uncap(u) if _uncap(u) in c.uses else u
        c.uses[key] += 1
        c.docs[key] += 1
    return c


def _uncap(unit: str) -> str:
    return unit[0].lower() + unit[1:]


def _is_word(unit: str, settings: MiningSettings) -> bool:
    letters = sum(c.isalpha() for c in unit)
    return len(unit) >= settings.min_chars and letters >= max(2, len(unit) // 2)


def score(notes: Sequence[str], corpus: Sequence[str], settings: MiningSettings = MiningSettings()
          ) -> list[Candidate]:
    """Every unit that occurs in the notes, with the evidence for and against it and whether it is kept, most
    domain-specific first."""
    if not notes or not corpus:
        raise ValueError("need at least one note and one corpus sentence")
    joins = _joins([*notes, *corpus], settings)
    n, d = _count(notes, joins, notes=True), _count(corpus, joins, notes=False)
    out = []
    for unit, note_docs in n.docs.items():
        uses, corpus_docs = n.uses[unit], d.docs.get(unit, 0)
        # per word, smoothed: a term is named about as often in domain text as in the notes, or more
        contrast = math.log((d.uses.get(unit, 0) + 0.5) / d.words) - math.log((uses + 0.5) / n.words)
        fixed = max(n.beside[unit].values()) / uses if uses >= settings.template_min_uses else 0.0
        kept = (_is_word(unit, settings) and corpus_docs >= settings.min_corpus_docs
                and contrast >= settings.min_contrast and fixed < settings.template_share
                and note_docs <= settings.max_note_share * len(notes)
                and corpus_docs <= settings.max_corpus_share * len(corpus))
        out.append(Candidate(unit, note_docs, corpus_docs, round(contrast, 3), round(fixed, 3), kept))
    return sorted(out, key=lambda c: (-c.kept, -c.contrast, c.unit))


def mine_lexicon(notes: Sequence[str], corpus: Sequence[str], settings: MiningSettings = MiningSettings()
                 ) -> list[str]:
    """The kept units, most domain-specific first: a `lexicon:<file>` list."""
    return [c.unit for c in score(notes, corpus, settings) if c.kept]


def read_texts(path, column: str) -> list[str]:
    """The non-empty texts of one column of a notes or corpus file (.csv, .tsv, .parquet, .jsonl, ...); a
    missing file, an unknown column or no text at all is one line naming the file and the column."""
    from dsgkd.data.emr import read_table, require_columns
    from dsgkd.errors import UserError

    df = read_table(path)
    require_columns(path, df.columns, [column])
    texts = [str(t) for t in df[column].dropna() if str(t).strip()]
    if not texts:
        raise UserError(f"{path}: column '{column}' holds no text")
    return texts
