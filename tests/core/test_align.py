"""Term selection and cross-tokenizer alignment on hand-checked strings."""
import pytest

from dsgkd.core.align import char_to_token_spans, find_terms
from tokenizers_fixture import sentencepiece, wordpiece

NOTE = "3일전부터 fever로 cough와\tr/o T-tube, Abd. SpO2"


def words(text, **kw):
    return [text[a:b] for a, b in find_terms(text, **kw)]


def test_latin_terms_strip_particles_and_keep_inner_punctuation():
    assert words(NOTE) == ["fever", "cough", "r/o", "T-tube", "Abd", "SpO2"]
    assert find_terms("fever로") == [(0, 5)]


@pytest.mark.parametrize("text, expected", [
    ("cough(+), sputum(-)", ["cough", "sputum"]),
    ("vomiting x3회\n설사 2회\tAGE 의심", ["vomiting", "x3", "AGE"]),
    ("BT 38.5, HR 150, v/s stable", ["BT", "HR", "v/s", "stable"]),
    ("어제부터 열이 나고 잘 먹지 않음", []),
    ("", []),
    ("f/u in 2 days. r/o URI.", ["f/u", "in", "days", "r/o", "URI"]),
    ("COVID-19 검사 음성", ["COVID-19"]),
    ("3mg 투여, 2T tid", ["tid"]),  # units glued to a number are not terms
])
def test_latin_terms_on_code_switched_notes(text, expected):
    assert words(text) == expected


def test_all_selector_takes_every_whitespace_word():
    assert words("3일전부터 fever로\n기침", selector="all") == ["3일전부터", "fever로", "기침"]


def test_max_terms_keeps_the_first_in_text_order():
    assert words("a b c d e", max_terms=3) == ["a", "b", "c"]


def test_unknown_selector_fails():
    with pytest.raises(ValueError, match="selector"):
        find_terms("x", selector="nouns")


def _spans(tok, text, **kw):
    enc = tok(text, return_offsets_mapping=True, **kw)
    return tok.convert_ids_to_tokens(enc["input_ids"]), char_to_token_spans(enc["offset_mapping"], find_terms(text))


def test_uncased_wordpiece_with_nfd_hangul():
    toks, spans = _spans(wordpiece(uncased=True), NOTE)
    # "3일전부터" decomposes into 10 jamo pieces after "3", so "fever" is token 12, "##ᄅ ##ᅩ" follow it.
    assert toks[12] == "fever" and toks[13:15] == ["##ᄅ", "##ᅩ"]
    assert spans == [(12, 13), (15, 16), (18, 21), (21, 24), (25, 26), (27, 30)]
    assert toks[27:30] == ["sp", "##o", "##2"]


def test_cased_wordpiece():
    toks, spans = _spans(wordpiece(uncased=False), NOTE)
    assert spans == [(5, 6), (7, 8), (9, 12), (12, 15), (16, 17), (18, 20)]
    assert toks[12:15] == ["T", "-", "tube"] and toks[18:20] == ["SpO", "##2"]


def test_sentencepiece_metaspace_and_tab():
    toks, spans = _spans(sentencepiece(), NOTE)
    # "▁fever" covers the space before the word; the tab before "r/o" becomes part of an <unk> piece.
    assert toks[4] == "▁fever" and toks[8] == "<unk>"
    assert spans == [(4, 5), (6, 7), (8, 11), (11, 14), (15, 16), (17, 19)]


@pytest.mark.parametrize("make, kept", [
    (lambda: wordpiece(uncased=True), [None] * 6),        # 8 tokens hold only "3" and jamo
    (lambda: wordpiece(uncased=False), [(5, 6)] + [None] * 5),
    (sentencepiece, [(4, 5), (6, 7)] + [None] * 4),
])
def test_terms_cut_by_truncation_are_dropped(make, kept):
    _, spans = _spans(make(), NOTE, truncation=True, max_length=8)
    assert spans == kept


def test_a_term_cut_in_half_by_truncation_is_dropped():
    tok = wordpiece(uncased=False)
    text = "fever SpO2"
    _, spans = _spans(tok, text, truncation=True, max_length=4)  # [CLS] fever SpO [SEP]: "##2" cut
    assert spans == [(1, 2), None]


def test_no_terms_no_spans():
    assert char_to_token_spans([(0, 0), (0, 3), (0, 0)], []) == []


def test_lexicon_selector_takes_only_listed_terms_longest_first_case_sensitive():
    text = "3일전부터 fever, r/o otitis media, AGE 의심, age 5, status  epilepticus로 전원, URI"
    assert words(text, selector="lexicon:embedded") == ["otitis media", "AGE", "status  epilepticus", "URI"]
    assert words("meningitis와 sepsis, Xsepsis", selector="lexicon:embedded") == ["meningitis", "sepsis"]


def test_lexicon_file_comments_and_errors(tmp_path):
    from dsgkd.core.align import selector_identity
    from dsgkd.config import DistillConfig
    from dsgkd.errors import UserError

    lex = tmp_path / "terms.txt"
    lex.write_text("# KCD-derived\nr/o\n\nKawasaki disease\n", encoding="utf-8")
    assert words("r/o Kawasaki  disease, Kawasaki", selector=f"lexicon:{lex}") == ["r/o", "Kawasaki  disease"]
    before = selector_identity(f"lexicon:{lex}")
    with pytest.raises(UserError, match="lexicon file not found"):
        find_terms("x", selector=f"lexicon:{tmp_path / 'missing.txt'}")
    with pytest.raises(ValueError, match="selector"):
        DistillConfig(selector="lexicon:")
    assert before.startswith("lexicon:") and str(lex) not in before  # keyed by content, not by path


def test_lexicon_terms_in_another_script_stop_where_that_script_stops(tmp_path):
    """A Cyrillic (or Hangul) term keeps a glued particle of another script off and never starts inside a word
    of its own script, but may run on into its own script's particles and endings."""
    lex = tmp_path / "terms.txt"
    lex.write_text("СЕПСИС\nКАВА БОЛ\n장염\nsepsis\n", encoding="utf-8")
    text = "r/o СЕПСИС로, ПСЕПСИС, СЕПСИСА, КАВА  БОЛ 의심, 장염으로 급성장염 xsepsis sepsis와"
    assert words(text, selector=f"lexicon:{lex}") == ["СЕПСИС", "СЕПСИС", "КАВА  БОЛ", "장염", "sepsis"]
