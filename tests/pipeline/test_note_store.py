"""A search's note store: trials read the notes its set-up encoded, the same notes an in-memory run encodes."""
import numpy as np

from dsgkd.config import RunConfig
from dsgkd.pipeline import note_store
from dsgkd.pipeline.prepare import prepare
from dsgkd.pipeline.resolve import resolve_run


def config(notes_csv, **over) -> RunConfig:
    return RunConfig().with_overrides({"data.path": str(notes_csv), "data.text_col": "ER_DHX",
                                       "data.label_col": "LABEL", "data.transfer_path": str(notes_csv),
                                       "data.max_transfer": 40, "train.max_length": 64,
                                       "teacher.ref": "kmbert-tiny", "student.ref": "xlmr-tiny", **over})


def test_store_holds_the_notes_a_run_encodes_and_is_written_once(notes_csv, tmp_path, monkeypatch):
    cfg = config(notes_csv)
    plain = prepare(resolve_run(cfg), teacher_weights=False)
    calls = []
    encode = note_store.encode_notes
    monkeypatch.setattr(note_store, "encode_notes", lambda *a, **k: calls.append(1) or encode(*a, **k))
    prepare(resolve_run(cfg), teacher_weights=False, note_store=tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.iterdir())) == 2  # the KD pool and validation
    again = prepare(resolve_run(cfg), teacher_weights=False, note_store=tmp_path)
    assert len(calls) == 2  # the second run maps the stores, encodes nothing
    for a, b in ((plain.train_examples, again.train_examples), (plain.val_examples, again.val_examples)):
        assert len(a) == len(b) > 0
        assert isinstance(b.arrays["s_ids"], np.memmap)
        for k, v in a.arrays.items():
            assert np.array_equal(v, b.arrays[k]), k


def test_kd_off_trials_share_the_kd_on_store_and_other_rules_get_their_own(notes_csv, tmp_path):
    prepare(resolve_run(config(notes_csv)), teacher_weights=False, note_store=tmp_path)
    off = prepare(resolve_run(config(notes_csv, **{"distill.alpha": 0.0, "distill.beta": 0.0})), note_store=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2 and off.teacher_tok is None
    prepare(resolve_run(config(notes_csv, **{"distill.selector": "all"})), teacher_weights=False, note_store=tmp_path)
    assert len(list(tmp_path.iterdir())) == 4  # another rule finds other terms: its own pool and validation stores


def test_a_cache_build_reads_the_pool_from_the_store_and_writes_the_same_cache(notes_csv, tmp_path, monkeypatch):
    """The set-up writes the store, then the teacher caches: a build given the store tokenises nothing, and its
    cache holds exactly what a build that encodes the pool itself writes."""
    from dsgkd.pipeline.teacher_cache import build_cache

    cfg = config(notes_csv)
    prepare(resolve_run(cfg), teacher_weights=False, note_store=tmp_path / "store")
    own = build_cache(cfg, [0, 2], tmp_path / "own", source="pretrained", attention=True)
    monkeypatch.setattr(note_store, "encode_notes", lambda *a, **k: (_ for _ in ()).throw(AssertionError("encoded")))
    stored = build_cache(cfg, [0, 2], tmp_path / "stored", source="pretrained", attention=True,
                         store=tmp_path / "store")
    assert own.name == stored.name
    files = sorted(p.name for p in own.iterdir() if p.suffix == ".npy")
    assert "train.pooled.npy" in files and "train.grid.npy" in files
    for name in files:
        assert np.array_equal(np.load(own / name), np.load(stored / name)), name


def test_the_store_key_tells_texts_with_newlines_apart(tmp_path):
    """Two notes "a", "b" and one note "a\\nb" are different KD pools (a key joining texts by newline merged them)."""
    from dsgkd.models.load import load_tokenizer

    cfg = RunConfig().with_overrides({"train.max_length": 16})
    sides = {"s": ("xlmr-tiny", load_tokenizer("xlmr-tiny"))}
    note_store.encoded(["fever x3", "r/o AGE"], None, sides, cfg=cfg, store=tmp_path)
    note_store.encoded(["fever x3\nr/o AGE"], None, sides, cfg=cfg, store=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
