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
    stored = prepare(resolve_run(cfg), teacher_weights=False, note_store=tmp_path)
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
