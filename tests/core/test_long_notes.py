"""Long notes cut into pieces on hand-checked strings, and pooled back into one score per note."""
import numpy as np
import pytest

from dsgkd.core.long_notes import note_labels, pool_logits, split_notes
from tokenizers_fixture import wordpiece

WORDS = [f"w{i}" for i in range(100)]  # each an unknown word: one [UNK] token with its own offsets


@pytest.fixture(scope="module")
def tok():
    return wordpiece(uncased=False)


def test_windows_cover_every_word_in_overlapping_windows_of_the_budget(tok):
    # max_length 24: [CLS] and [SEP] and 2 tokens of margin leave 20 words a window, a quarter overlapping
    pieces = split_notes([" ".join(WORDS), "fever cough"], tok, 24, "windows")
    starts = [0, 15, 30, 45, 60, 75, 80]
    assert pieces.texts[:-1] == [" ".join(WORDS[s:s + 20]) for s in starts]
    assert pieces.texts[-1] == "fever cough" and pieces.note.tolist() == [0] * 7 + [1] and pieces.split
    assert all(len(tok(t)["input_ids"]) <= 24 for t in pieces.texts)


def test_a_window_edge_inside_a_word_moves_to_the_word_boundary(tok):
    # "fever" is one token, "fe" + "##ver"-like splits do not occur here; an unknown long word is one token, so
    # cut a note whose token edge falls inside "r/o" (three tokens: r, /, o) and check no piece splits it
    text = " ".join(["w1"] * 8 + ["r/o"] + ["w2"] * 12)
    pieces = split_notes([text], tok, 14, "windows")  # budget 10
    assert all("r/o" in t or ("r/" not in t and "/o" not in t) for t in pieces.texts)
    assert any("r/o" in t for t in pieces.texts)


def test_head_tail_keeps_the_first_and_last_halves_of_the_budget(tok):
    pieces = split_notes([" ".join(WORDS)], tok, 24, "head_tail")
    assert pieces.texts == [" ".join(WORDS[:10]) + " … " + " ".join(WORDS[90:])] and not pieces.split


@pytest.mark.parametrize("mode", ["truncate", "head_tail", "windows"])
def test_notes_within_the_budget_are_left_alone(tok, mode):
    notes = ["3일전부터 fever, cough x3", "r/o T-tube"]
    pieces = split_notes(notes, tok, 24, mode)
    assert pieces.texts == notes and pieces.note.tolist() == [0, 1] and not pieces.split


def test_truncate_never_tokenizes():
    assert split_notes(["a " * 1000], None, 8, "truncate").texts == ["a " * 1000]


def test_a_note_takes_the_logits_of_its_window_with_the_largest_positive_margin(tok):
    pieces = split_notes([" ".join(WORDS[:30]), "fever", " ".join(WORDS)], tok, 24, "windows")
    assert pieces.note.tolist() == [0, 0, 1] + [2] * 7
    logits = np.array([[0.0, 1.0], [2.0, 5.0], [1.0, 0.0]] + [[0.0, -1.0]] * 5 + [[-3.0, 0.5], [0.0, 0.0]])
    pooled = pool_logits(logits, pieces)
    np.testing.assert_array_equal(pooled, [[2.0, 5.0], [1.0, 0.0], [-3.0, 0.5]])  # margins 3, -1, 3.5
    assert note_labels([1, 1, 0] + [1] * 7, pieces).tolist() == [1, 0, 1]
