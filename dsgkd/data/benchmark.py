"""The embedded benchmark's files for one world: labelled train / val / test notes and unlabelled transfer
notes, each drawn from its own generator seed (so no patient spans two files).

The training file carries no held-out term (`dsgkd.data.world`); validation, test and transfer notes carry
all of the world's terms, and val/test mark with HELD_OUT_TERM the notes that show a held-out one, the subset
where only knowledge from the domain corpus can help. The seeds are part of the protocol: a reported table
draws its test split from a seed no design decision has seen.
"""
from __future__ import annotations

from pathlib import Path

from dsgkd.data.world import DEFAULT

DATA_SEEDS = {"train": 100, "val": 101, "test": 102, "transfer": 103}
# The test split `dsgkd table` reports, drawn once its design (world, recipe, space, rows, statistics) was
# frozen: seed 102's test notes are seen by the demo and by design runs. A design change after a reported table
# needs a new seed here, never a re-run on the old one: 202 reported the 2026-12-04 table; 303 was drawn on
# 2026-12-06 after the calibration design (teacher sources, profiles, recipe, task view, 8-trial searches) froze;
# 404 later that day, after the wrong-knowledge arm and the crossed primary comparison (docs/levers.md) froze; 505
# on 2026-12-07, after the recipe grid gained the students' head pooling and a 2e-3 learning rate (models.pooling);
# 606 on 2026-12-07, after every row of a table came under the validation floor that redraws a stalled run
# (train.restart_floor, pipeline.redraw).
REPORTED_SEEDS = {**DATA_SEEDS, "test": 606}
SPLITS = tuple(DATA_SEEDS)


def write_benchmark(out: str | Path, sizes: dict[str, int], *, world: str = DEFAULT,
                    seeds: dict[str, int] | None = None) -> dict[str, str]:
    """Write OUT/{train,val,test,transfer}.csv (those in `sizes`) unless present; return their paths."""
    from dsgkd.data.synthetic import generate_notes, write_table

    seeds = {**DATA_SEEDS, **(seeds or {})}
    out = Path(out)
    paths = {}
    for split, n in sizes.items():
        path = out / f"{split}.csv"
        if not path.is_file():
            df = generate_notes(n, seed=seeds[split], world=world, include_held_out=split != "train")
            write_table(df[["ER_DHX"]] if split == "transfer" else df, path)
        paths[split] = str(path.resolve())
    return paths
