"""Batching: dynamic padding, length buckets, rank sharding, collation masks."""
import numpy as np
import torch

from dsgkd.core.features import collate, encode_notes, epoch_batches, make_batches
from tokenizers_fixture import sentencepiece, wordpiece


def test_bucketing_cuts_padding_and_keeps_every_note_once():
    lengths = [((i * 37) % 97) + 3 for i in range(400)]
    plain = make_batches(lengths, 16, shuffle=True, seed=1, bucket=False)
    bucketed = make_batches(lengths, 16, shuffle=True, seed=1, bucket=True)
    assert sorted(i for b in bucketed for i in b) == list(range(400))

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded(bucketed) < 0.7 * padded(plain)
    assert make_batches(lengths, 16, shuffle=True, seed=1) == make_batches(lengths, 16, shuffle=True, seed=1)
    assert make_batches(lengths, 16, shuffle=True, seed=1) != make_batches(lengths, 16, shuffle=True, seed=2)


def test_ranks_get_equal_batch_counts_covering_all_notes():
    lengths = list(range(5, 75))  # 70 notes, 5 batches of 16 (last short)
    shards = [make_batches(lengths, 16, shuffle=True, seed=0, rank=r, world=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 3
    seen = {i for shard in shards for b in shard for i in b}
    assert seen == set(range(70))


def test_collate_masks_terms_either_side_dropped():
    texts = ["3일전부터 fever로 cough와", "r/o T-tube SpO2"]
    ex = encode_notes(texts, [1, 0], sentencepiece(), wordpiece(uncased=True), selector="latin",
                      max_terms=8, max_length=6)
    batch = collate(ex, 1, 0)
    assert batch["s_ids"].shape[0] == 2 and batch["term_mask"].shape == (2, 3)
    # every kept term has a non-empty span on both sides; dropped ones are masked
    for side in ("s_spans", "t_spans"):
        width = batch[side][..., 1] - batch[side][..., 0]
        assert (width[batch["term_mask"]] > 0).all()
    assert not batch["term_mask"].all()  # max_length 6 cuts some terms
    assert batch["labels"].tolist() == [1, 0]
    fixed = collate(ex, 1, 0, pad_to=10)
    assert fixed["s_ids"].shape[1] == 10 and fixed["t_ids"].shape[1] == 10
    assert torch.equal(fixed["term_mask"], batch["term_mask"])


def test_alongside_a_kd_off_run_takes_the_batches_of_a_run_without_transfer_notes_and_a_kd_run_adds_them_beside():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 10 + [-1] * 13)  # 20 labelled notes, then 13 transfer notes
    lengths = rng.integers(5, 60, len(labels)).tolist()
    common = {"shuffle": True, "seed": 7, "bucket": True}
    plain = make_batches(lengths[:20], 8, **common)  # the run that never named transfer notes
    off = epoch_batches(labels, lengths, 8, alongside=True, kd_on=False, **common)
    on = epoch_batches(labels, lengths, 8, alongside=True, kd_on=True, **common)
    assert off == plain
    assert [[i for i in b if i < 20] for b in on] == plain  # the same labelled batches, step for step
    beside = sorted(i for b in on for i in b if i >= 20)
    assert beside == list(range(20, 33))  # every transfer note once an epoch
    assert max(len(b) - len(p) for b, p in zip(on, plain)) == 5  # 13 over 3 steps: at most 5 beside a batch
    assert epoch_batches(labels, lengths, 8, alongside=False, kd_on=False, **common) == \
        make_batches(lengths, 8, **common)  # mixed: one pool, whether KD is on or off
