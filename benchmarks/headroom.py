"""Headroom of a world's labels for term knowledge, with no neural model (`dsgkd.data.headroom`).

Writes the benchmark's train and test files of a world and profile (in a temporary folder unless --data),
fits the three logistic oracles (prose and vitals only; plus seen terms' identities; plus every term's severity
sign from the world's truth) and prints one JSON object: their test AUROC overall and on the held-out-term
notes, the gap (c) - (a), the gap over seen terms (c) - (b), and headroom_ok (gap >= 0.10). `dsgkd table
--profile positive` is meant to run the same check before it trains anything.

    python benchmarks/headroom.py [--world default] [--profile positive] [--train 2000] [--test 1000]
                                  [--data DIR]
"""
import argparse
import json
import tempfile

from dsgkd.data.benchmark import write_benchmark
from dsgkd.data.headroom import headroom_of_files
from dsgkd.data.world import get_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="default", help="world name (`W:P` names a profile too)")
    ap.add_argument("--profile", help="default, positive or negative")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--data", help="write (or reuse) the benchmark files here instead of a temporary folder")
    args = ap.parse_args()
    world = get_world(args.world, args.profile)
    sizes = {"train": args.train, "test": args.test}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_benchmark(args.data or tmp, sizes, world=world.name)
        print(json.dumps(headroom_of_files(paths, world)))


if __name__ == "__main__":
    main()
