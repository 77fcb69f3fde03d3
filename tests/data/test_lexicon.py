"""Mining a term lexicon from notes and a domain corpus, with no term list: what it keeps and why."""
import functools

import pytest

from dsgkd.data.lexicon import MiningSettings, mine_lexicon, score, words
from dsgkd.data.synthetic import generate_domain_corpus, generate_notes


def test_words_split_where_the_script_changes_whatever_the_scripts():
    text = "3일전부터 fever로, r/o СЕПСИС와 T-tube(-) SpO2 95%"
    assert [w for _, _, w in words(text)] == ["3일전부터", "fever", "로", "r/o", "СЕПСИС", "와", "T-tube", "SpO2", "95"]
    assert all(text[a:b] == w for a, b, w in words(text))


@functools.lru_cache(maxsize=1)
def _small():
    """Labelled notes without held-out terms, unlabelled notes with them, and a domain corpus: what a user has."""
    notes = [*generate_notes(300, seed=100, include_held_out=False)["ER_DHX"],
             *generate_notes(500, seed=103)["ER_DHX"]]
    return notes, generate_domain_corpus(4000, seed=0)


def test_mined_lexicon_keeps_terms_whole_and_drops_vitals_abbreviations_and_boilerplate():
    mined = set(mine_lexicon(*_small()))
    assert {"Kawasaki disease", "otitis media", "functional abdominal pain", "sepsis", "AGE", "URI"} <= mined
    # "viral" is two terms' first word: the second round of joining keeps "viral syndrome" whole too
    assert {"viral exanthem", "viral syndrome"} <= mined
    assert not mined & {"viral", "disease", "syndrome", "BT", "HR", "SpO2", "v/s", "r/o", "Dx", "fever", "cough",
                        "CBC", "PE", "Abd", "soft", "의심", "처짐"}


def test_each_filter_is_what_drops_its_kind_of_word():
    """Boilerplate ("PE: Abd. soft, tenderness(-)") is rare enough and named in the corpus, but always beside the
    same word; vitals' labels are in most notes."""
    by_unit = {c.unit: c for c in score(*_small())}
    assert by_unit["soft"].fixed > 0.9 and not by_unit["soft"].kept
    assert by_unit["BT"].note_docs > 0.5 * 800 and not by_unit["BT"].kept
    loose = {c.unit for c in score(*_small(), MiningSettings(template_share=2.0, min_contrast=-9.0)) if c.kept}
    assert "soft" in loose and "BT" not in loose


def test_no_notes_or_no_corpus_is_an_error():
    with pytest.raises(ValueError, match="at least one note"):
        score([], ["sepsis is an emergency."])
