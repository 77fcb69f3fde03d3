"""`dsgkd table --reuse` end to end: a finished table taken again by a table on the same test split must report every
figure it reported, in a fraction of its time.

Runs `dsgkd table --reuse TABLE --out NEW <table args>` (the same protocol as TABLE, so the same notes, test split
included; an OUT already finished just re-renders), and compares NEW/results.json with TABLE/results.json value by
value (every pair's rows, comparisons, probes and the headroom check, TABLE's folder read as NEW's where a config's
description names a file in it): rescoring a run on the split it was trained beside gives the predictions training
wrote, so nothing may differ. Prints one JSON object, with both tables' minutes from their results.json.

    python benchmarks/table_reuse.py --table runs/tables4/positive --out runs/reuse_check/positive \
        -- --profile positive --transfer 1000
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path


def differences(a, b, path: str = "") -> tuple[int, list[tuple[str, str]]]:
    """(values compared, [(where, how)]) between two JSON values; floats equal to 1e-12."""
    if isinstance(a, dict) and isinstance(b, dict):
        n, found = 0, [(f"{path}/{k}", "on one side only") for k in sorted(a.keys() ^ b.keys())]
        for k in sorted(a.keys() & b.keys()):
            m, more = differences(a[k], b[k], f"{path}/{k}")
            n, found = n + m, found + more
        return n, found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        n, found = 0, []
        for i, (u, v) in enumerate(zip(a, b)):
            m, more = differences(u, v, f"{path}[{i}]")
            n, found = n + m, found + more
        return n, found
    if isinstance(a, float) and isinstance(b, float):
        same = a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12
        return 1, [] if same else [(path, f"{a!r} vs {b!r}")]
    return 1, [] if a == b else [(path, f"{a!r} vs {b!r}")]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True, help="a finished table (its own folder, students included)")
    p.add_argument("--out", type=Path, required=True, help="where the reusing table goes (new or resumed)")
    p.add_argument("table_args", nargs="*", help="after --: the arguments TABLE was run with (--profile, sizes, ...)")
    args = p.parse_args(argv)
    started = time.time()
    subprocess.run([sys.executable, "-m", "dsgkd.cli", "table", *args.table_args, "--out", str(args.out),
                    "--reuse", str(args.table)], check=True, stdout=sys.stderr)
    wall = time.time() - started
    old, new = (json.loads((d / "results.json").read_text(encoding="utf-8")) for d in (args.table, args.out))
    # a config's description names its table's own files (the mined lexicon): read TABLE's as NEW's
    moved = json.loads(json.dumps({"pairs": old["pairs"], "headroom": old.get("headroom")}).replace(
        f"{args.table.resolve()}/", f"{args.out.resolve()}/"))
    n, found = differences(moved, {"pairs": new["pairs"], "headroom": new.get("headroom")})
    minutes = {name: round(sum(i["seconds"] for i in r["meta"]["invocations"]) / 60, 1)
               for name, r in (("table", old), ("reusing_table", new))}
    result = {"table": str(args.table), "minutes_this_call": round(wall / 60, 1),
              **{f"minutes_{name}": m for name, m in minutes.items()},
              "reused": new["meta"].get("reused"), "values_compared": n, "differing": len(found),
              "first_differences": found[:10]}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
