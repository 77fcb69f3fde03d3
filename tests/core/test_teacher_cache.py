"""The ragged, memory-mapped teacher cache returns what the live teacher computes, and refuses damage."""
import numpy as np
import pytest
import torch

from dsgkd.core.features import collate, encode_notes
from dsgkd.core.teacher.cache import CachedTeacher, verify_cache, write_cache
from dsgkd.core.teacher.signal import LiveTeacher
from dsgkd.errors import UserError
from dsgkd.models.load import load_classifier

TEXTS = ["3일전부터 fever, vomiting x3, r/o AGE", "환자 상태 양호하며 특이사항 없음",  # the second has no term
         "Abd. soft, T-tube 유지, 어제부터 cough 심해짐 BT 38.5", "seizure 1회 5분 지속 후 소실",
         "rash 전신, itching 호소", "경련 없음"] * 3
LAYERS, ATTN = [0, 1, 2, 3, 4], [1, 2, 3, 4]
MAX_LEN = 12  # short enough that truncation cuts the last terms of the long notes


@pytest.fixture(scope="module")
def teacher():
    tok, model = load_classifier("kmbert-tiny", output_attentions=True)
    return tok, model.eval()


def build(teacher, out, *, attn=ATTN, logits=False):
    tok, model = teacher
    notes = encode_notes(TEXTS, None, None, tok, selector="latin", max_terms=4, max_length=MAX_LEN)
    return write_cache(model, tok, {"train": notes}, out, key="k", layers=LAYERS, attn_layers=attn, logits=logits,
                       batch_size=4)


def batches(teacher):
    tok, _ = teacher
    examples = encode_notes(TEXTS, None, None, tok, selector="latin", max_terms=4, max_length=MAX_LEN)
    assert any(not all(ex["t_ok"]) for ex in examples) and any(ex["n_terms"] == 0 for ex in examples)
    for idx in ([0, 1, 2, 3], [5, 4, 1], list(range(len(TEXTS)))):
        yield collate([examples[i] for i in idx], None, tok.pad_token_id)


@pytest.mark.parametrize("layers, attn", [(LAYERS, ATTN), ([2, 4], [4]), ([0, 3], [])])
def test_cache_equals_the_live_signal(teacher, tmp_path, layers, attn):
    cache = build(teacher, tmp_path, attn=ATTN if attn else [])
    live = LiveTeacher(teacher[1], layers, attn, logits=True)
    cached = CachedTeacher(cache, layers, attn, logits=False)
    for batch in batches(teacher):
        a, b = live(batch, "train"), cached(batch, "train")
        m = batch["term_mask"]
        assert m.any() and not m.all()  # kept terms and padding, an empty note, a term cut by truncation
        torch.testing.assert_close(a.pooled * m[None, :, :, None], b.pooled, atol=2e-3, rtol=1e-2)
        if attn:
            pair = (m[:, None, :, None] & m[:, None, None, :]).expand_as(a.grid[0])
            torch.testing.assert_close(a.grid * pair, b.grid, atol=1e-3, rtol=1e-2)


def test_logits_and_ragged_size(teacher, tmp_path):
    cache = build(teacher, tmp_path, logits=True)
    batch = next(batches(teacher))
    live = LiveTeacher(teacher[1], LAYERS, ATTN, logits=True)(batch, "train")
    torch.testing.assert_close(CachedTeacher(cache, LAYERS, ATTN, logits=True)(batch, "train").logits, live.logits)
    stored = np.load(cache / "train.pooled.npy", mmap_mode="r")
    kept = sum(int(sum(ex["t_ok"])) for ex in encode_notes(TEXTS, None, None, teacher[0], selector="latin",
                                                         max_terms=4, max_length=MAX_LEN))
    assert stored.shape[1] == kept  # only the terms notes have: no padding to the widest note


def test_a_damaged_cache_is_refused_then_rebuilt(teacher, tmp_path, capsys):
    cache = build(teacher, tmp_path)
    good = (cache / "train.pooled.npy").read_bytes()
    with open(cache / "train.pooled.npy", "r+b") as f:
        f.truncate(len(good) - 10)
    with pytest.raises(UserError, match="truncated or damaged"):
        CachedTeacher(cache, LAYERS, ATTN, logits=False)
    assert not verify_cache(cache)
    assert build(teacher, tmp_path) == cache and verify_cache(cache)
    assert "rebuilding" in capsys.readouterr().out
    flipped = bytearray((cache / "train.pooled.npy").read_bytes())
    flipped[-1] ^= 0xFF  # same size, other content: only the checksum sees it
    (cache / "train.pooled.npy").write_bytes(bytes(flipped))
    assert not verify_cache(cache)
    build(teacher, tmp_path)
    assert (cache / "train.pooled.npy").read_bytes() == good and verify_cache(cache)
