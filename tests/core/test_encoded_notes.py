"""Encoded notes as flat arrays: the same notes as per-note arrays, saved whole and memory-mapped back."""
import numpy as np

from dsgkd.core.encoded_notes import EncodedNotes
from dsgkd.core.features import collate, encode_notes, example_labels, note_lengths
from tokenizers_fixture import sentencepiece, wordpiece

TEXTS = ["3일전부터 fever로 cough와", "r/o T-tube SpO2", "두통", "BT 38.2 vomiting x3 r/o AGE"]


def notes() -> EncodedNotes:
    return encode_notes(TEXTS, [1, 0, 1, -1], sentencepiece(), wordpiece(uncased=True), selector="latin",
                        max_terms=8, max_length=6)


def test_flat_arrays_give_back_each_note_as_encoded():
    ex = notes()
    s_tok = sentencepiece()
    assert len(ex) == 4 and [e["idx"] for e in ex] == [0, 1, 2, 3]
    assert example_labels(ex).tolist() == [1, 0, 1, -1]
    for i, text in enumerate(TEXTS):
        ids = s_tok(text, truncation=True, max_length=6)["input_ids"]
        assert ex[i]["s_ids"].tolist() == ids  # hand-checkable: the tokenizer's own ids, cut at 6
        assert len(ex[i]["s_spans"]) == len(ex[i]["t_spans"]) == len(ex[i]["s_ok"]) == ex[i]["n_terms"]
    assert ex[2]["n_terms"] == 0 and ex[2]["s_spans"].shape == (0, 2)  # a note without a Latin word
    assert list(note_lengths(ex)) == [len(ex[i]["s_ids"]) for i in range(4)]
    assert [e["idx"] for e in ex[1:3]] == [1, 2] and ex[-1]["idx"] == 3
    kept = [int((e["s_ok"] & e["t_ok"]).sum()) for e in ex]
    assert ex.kept_terms().tolist() == kept and sum(kept) > 0


def test_saved_store_maps_back_the_same_notes_read_only(tmp_path):
    ex = notes()
    ex.save(tmp_path / "store")
    back = EncodedNotes.open(tmp_path / "store")
    assert isinstance(back.arrays["s_ids"], np.memmap) and not back.arrays["s_ids"].flags.writeable
    for a, b in zip(ex, back):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k
    batch, again = collate(ex[:4], 1, 0), collate(back[:4], 1, 0)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)
    assert EncodedNotes.open(tmp_path / "missing") is None


def test_a_damaged_store_is_not_opened_and_is_replaced(tmp_path):
    store = tmp_path / "store"
    notes().save(store)
    ids = store / "s_ids.npy"
    ids.write_bytes(ids.read_bytes()[:-8])
    assert EncodedNotes.open(store) is None  # cut short
    notes().save(store, replace=True)
    raw = bytearray(ids.read_bytes())
    raw[-4:] = b"\0\0\0\0"  # a zeroed page: same size, other ids
    ids.write_bytes(bytes(raw))
    assert EncodedNotes.open(store) is None
    notes().save(store)  # the first writer wins: a plain save keeps what is there
    assert EncodedNotes.open(store) is None
    notes().save(store, replace=True)
    assert EncodedNotes.open(store)[3]["s_ids"].tolist() == notes()[3]["s_ids"].tolist()
