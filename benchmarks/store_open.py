"""What a trial pays to open a note store with its checksums verified (`EncodedNotes.open`), at the published
corpus's size: 87,759 notes of 256 tokens on both sides (student, teacher) and 8 terms each, random ids.

Each trial and each DDP rank verifies the store it maps rather than trusting the set-up's check, so a page
zeroed after the set-up is caught before training on wrong token ids; this measures what that costs (first open
and a second one, the page cache warm both times since the store was just written). Prints JSON.

    python benchmarks/store_open.py [--notes 87759 --tokens 256 --terms 8]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from dsgkd.core.encoded_notes import EncodedNotes


def store(n: int, tokens: int, terms: int) -> EncodedNotes:
    rng = np.random.default_rng(0)
    arrays = {"label": rng.integers(0, 2, n), "term_off": np.arange(0, n * terms + 1, terms, dtype=np.int64)}
    for side in ("s", "t"):
        arrays |= {f"{side}_ids": rng.integers(0, 30_000, n * tokens).astype(np.int32),
                   f"{side}_ids_off": np.arange(0, n * tokens + 1, tokens, dtype=np.int64),
                   f"{side}_spans": np.zeros((n * terms, 2), np.int32), f"{side}_ok": np.ones(n * terms, bool)}
    return EncodedNotes(arrays)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=87_759)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--terms", type=int, default=8)
    a = ap.parse_args()
    notes = store(a.notes, a.tokens, a.terms)
    with tempfile.TemporaryDirectory() as tmp:
        path = notes.save(Path(tmp) / "store")
        seconds = []
        for _ in range(2):
            t0 = time.perf_counter()
            opened = EncodedNotes.open(path)
            seconds.append(round(time.perf_counter() - t0, 3))
            assert opened is not None and len(opened) == a.notes
    print(json.dumps({"notes": a.notes, "tokens": a.tokens, "store_mb": round(notes.nbytes() / 2**20, 1),
                      "open_verified_s": seconds}, indent=1))


if __name__ == "__main__":
    main()
