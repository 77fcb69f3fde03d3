"""Teacher cache at hospital size: build time, bytes per note, builder peak RSS, reader RSS and batch read time.

`--shape tiny`: the kmbert-tiny stand-in on synthetic notes, through `write_cache` exactly as a search
builds it. `--shape base`: a base-size teacher's signal (13 hidden states × 768, 12 attention layers × 12
heads) produced by a stand-in module that returns random states of that shape, through the same real
writer and reader; up to 32 terms a note. The dense layout it is compared with is the previous one: every
note padded to the split's widest, pooled [n, layers, W, D] + grid [n, attn_layers, heads, W, W] in fp16.

Builder and reader each run in a fresh process, so their peak RSS is theirs alone; `reader_private_mb` is
the reader's anonymous (non-file) memory, `reader_rss_mb` includes the memory-mapped cache pages it
touched, which the page cache shares between trials. Prints JSON.

    python benchmarks/cache_scale.py --notes 2000 20000 [--shape tiny|base] [--batches 50]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

LAYERS_BASE, HEADS_BASE, WIDTH_BASE, TERMS_BASE = 13, 12, 768, 32


class BaseShapeTeacher:
    """Returns seeded random hidden states / attentions of a 12-layer, 768-wide, 12-head encoder."""

    def __init__(self):
        import torch

        self.torch = torch

    def eval(self):
        return self

    def to(self, _device):
        return self

    def __call__(self, input_ids, attention_mask, output_hidden_states, output_attentions):
        torch = self.torch
        gen = torch.Generator().manual_seed(int(input_ids.sum()))
        b, t = input_ids.shape
        states = tuple(torch.randn(b, t, WIDTH_BASE, generator=gen) for _ in range(LAYERS_BASE))
        attn = tuple(torch.rand(b, HEADS_BASE, t, t, generator=gen).softmax(-1) for _ in range(LAYERS_BASE - 1))
        return SimpleNamespace(hidden_states=states, attentions=attn if output_attentions else None,
                               logits=torch.zeros(b, 2))


def notes(n: int, shape: str) -> list[str]:
    from dsgkd.data.synthetic import generate_notes

    texts = list(generate_notes(n, seed=0)["ER_DHX"])
    if shape == "base":  # pad every note with Latin terms so the widest notes reach 32, as real notes do
        extra = " ".join(f"term{k}" for k in range(TERMS_BASE))
        texts = [f"{t} {extra[: (i % 4) * 60]}" for i, t in enumerate(texts)]
    return texts


def build(out: str, n: int, shape: str) -> dict:
    import resource

    import torch

    from dsgkd.core.features import encode_notes
    from dsgkd.core.teacher.cache import write_cache
    from dsgkd.models.load import load_classifier, load_tokenizer

    torch.set_num_threads(2)
    texts = notes(n, shape)
    if shape == "tiny":
        tok, model = load_classifier("kmbert-tiny", output_attentions=True)
        layers = list(range(5))
    else:
        tok, model = load_tokenizer("kmbert-tiny"), BaseShapeTeacher()
        layers = list(range(LAYERS_BASE))
    t0 = time.perf_counter()
    encoded = encode_notes(texts, None, None, tok, selector="latin", max_terms=TERMS_BASE, max_length=128)
    cache = write_cache(model, tok, {"train": encoded}, Path(out), key="bench", layers=layers, attn_layers=layers[1:],
                        logits=False, batch_size=32)
    seconds = time.perf_counter() - t0
    return {"dir": str(cache), "build_seconds": round(seconds, 1),
            "builder_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def read(cache_dir: str, batches: int, shape: str) -> dict:
    import json as _json
    import random

    import torch
    from common import resident_mb

    from dsgkd.core.features import collate, encode_notes
    from dsgkd.core.teacher.cache import CachedTeacher
    from dsgkd.models.load import load_tokenizer

    meta = _json.loads((Path(cache_dir) / "meta.json").read_text())
    tok = load_tokenizer("kmbert-tiny")
    texts = notes(meta["n_notes"]["train"], shape)
    rng = random.Random(0)
    picks = [rng.sample(range(len(texts)), 32) for _ in range(batches)]
    examples = {i: ex for i, ex in zip(sorted({i for p in picks for i in p}),
                                       encode_notes([texts[i] for i in sorted({i for p in picks for i in p})],
                                                    None, None, tok, selector="latin", max_terms=TERMS_BASE,
                                                    max_length=128))}
    for i, ex in examples.items():
        ex["idx"] = i
    before = resident_mb()
    teacher = CachedTeacher(cache_dir, meta["layers"], meta["attn_layers"], logits=False)
    times = []
    for p in picks:
        batch = collate([examples[i] for i in p], None, tok.pad_token_id)
        t0 = time.perf_counter()
        out = teacher(batch, "train")
        times.append(time.perf_counter() - t0)
        assert torch.isfinite(out.pooled).all()
    after = resident_mb()
    return {"reader_rss_mb": round(after["VmRSS"] - before["VmRSS"], 1),
            "reader_private_mb": round(after["RssAnon"] - before["RssAnon"], 1),
            "reader_file_mb": round(after["RssFile"] - before["RssFile"], 1),
            "batch_read_ms_median": round(sorted(times)[len(times) // 2] * 1000, 2)}


def dense_bytes(cache_dir: str) -> int:
    """The previous layout's size for the same cache: every note padded to the widest note's terms."""
    import numpy as np

    d = Path(cache_dir)
    offsets = np.load(d / "train.term_offsets.npy")
    pos = np.load(d / "train.term_pos.npy")
    n = len(offsets) - 1
    widest = int(max((pos[offsets[i]:offsets[i + 1]].max() + 1) if offsets[i + 1] > offsets[i] else 0
                     for i in range(n)))
    pooled = np.load(d / "train.pooled.npy", mmap_mode="r")
    grid = np.load(d / "train.grid.npy", mmap_mode="r")
    layers, width, attn, heads = pooled.shape[0], pooled.shape[2], grid.shape[0], grid.shape[1]
    return 2 * n * (layers * widest * width + attn * heads * widest * widest)


def child(role: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", role, *args], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--shape", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, *rest = args.child
        result = build(rest[0], int(rest[1]), rest[2]) if role == "build" else read(rest[0], int(rest[1]), rest[2])
        print(json.dumps(result))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.notes:
            built = child("build", str(Path(tmp) / str(n)), str(n), args.shape)
            on_disk = sum(p.stat().st_size for p in Path(built["dir"]).iterdir())
            dense = dense_bytes(built["dir"])
            rows.append({"notes": n, **{k: v for k, v in built.items() if k != "dir"},
                         "bytes_per_note": round(on_disk / n), "dense_bytes_per_note": round(dense / n),
                         "ratio_to_dense": round(on_disk / dense, 3),
                         **child("read", built["dir"], str(args.batches), args.shape)})
    growth = rows[-1]["reader_private_mb"] - rows[0]["reader_private_mb"] if len(rows) > 1 else None
    print(json.dumps({"benchmark": "cache_scale", "shape": args.shape, "rows": rows,
                      "reader_private_growth_mb": growth, "goal_reader_growth_mb": 100,
                      "goal_ratio_to_dense": 0.5}, indent=1))


if __name__ == "__main__":
    main()
