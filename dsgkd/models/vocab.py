"""Stand-in vocabularies that come out the same on every machine.

The `tokenizers` trainers are not deterministic (huggingface/tokenizers#1794): the WordPiece trainer gives its
continuing-subword pieces ("##c") ids in hash-map order, and those ids break ties between merges of equal count,
so two builds on one corpus learn different vocabularies (four builds of biobert-tiny's gave four here); the
Unigram trainer finds the same pieces but scores and orders them differently from run to run. A stand-in rebuilt
on another machine was then another model, and a table resumed there distilled another teacher. Here:

- WordPiece: every "##c" of the corpus's characters is handed to the trainer up front (as a special token, which
  only fixes its id: the tokenizer is rebuilt from the plain vocabulary), so no id depends on iteration order;
- Unigram: the trainer's pieces are kept and scored again by EM over the corpus's words in a fixed order, from
  their substring frequencies, then ordered by score and text.
"""
from __future__ import annotations

import math
from collections import Counter

EM_ITERATIONS = 4


def continuing_pieces(texts: list[str], normalizer) -> list[str]:
    """"##c" for every character the normalised corpus holds, in code-point order."""
    chars = {c for t in texts for c in normalizer.normalize_str(t) if not c.isspace()}
    return ["##" + c for c in sorted(chars)]


def word_counts(texts: list[str], pre_tokenizer) -> Counter:
    return Counter(w for t in texts for w, _ in pre_tokenizer.pre_tokenize_str(t))


def unigram_scores(pieces: list[str], words: Counter, iterations: int = EM_ITERATIONS) -> dict[str, float]:
    """Each piece's unigram log-probability, by EM (forward-backward over every segmentation of each word into
    `pieces`), starting from how often it occurs as a substring. Words go in sorted order, so every sum is
    taken in the same order on every machine. A piece no segmentation uses scores below every used one."""
    vocab, longest = set(pieces), max(map(len, pieces))
    spans = {w: [(j, i, w[j:i]) for i in range(1, len(w) + 1) for j in range(max(0, i - longest), i)
                 if w[j:i] in vocab] for w in sorted(words)}
    counts = dict.fromkeys(pieces, 0.0)
    for w, found in spans.items():
        for _, _, p in found:
            counts[p] += words[w]
    for _ in range(iterations):
        logp = _log_probs(counts)
        counts = dict.fromkeys(pieces, 0.0)
        for w, found in spans.items():
            _expected_counts(w, found, words[w], logp, counts)
    return _log_probs(counts)


def _log_probs(counts: dict[str, float]) -> dict[str, float]:
    total = math.fsum(counts.values())
    used = {p: math.log(c / total) for p, c in counts.items() if c > 0}
    floor = min(used.values()) - 1.0
    return {p: used.get(p, floor) for p in counts}


def _expected_counts(word: str, spans: list[tuple[int, int, str]], freq: int, logp: dict[str, float],
                     counts: dict[str, float]) -> None:
    n = len(word)
    alpha, beta = [-math.inf] * (n + 1), [-math.inf] * (n + 1)
    alpha[0], beta[n] = 0.0, 0.0
    for j, i, p in spans:  # ordered by end: alpha[j] is final before any span from j is read
        alpha[i] = _logaddexp(alpha[i], alpha[j] + logp[p])
    for j, i, p in sorted(spans, key=lambda s: -s[0]):
        beta[j] = _logaddexp(beta[j], logp[p] + beta[i])
    z = alpha[n]
    if z == -math.inf:  # a character no piece covers: the word is left out, as <unk> would cover it
        return
    for j, i, p in spans:
        counts[p] += freq * math.exp(alpha[j] + logp[p] + beta[i] - z)


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))
