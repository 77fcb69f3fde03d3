"""`dsgkd table-record`: save a table's record (its figures without its models) or resume a table from one."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("table-record", help="copy a table's record (protocol, results, every finished run's "
                                            "metrics, predictions and probe, each search's best.yaml) elsewhere",
                       description="Copy the small files that carry a table's figures from SRC to DEST, without its "
                                   "models, teacher caches, notes or Ray trials (dsgkd.experiments.table_record). "
                                   "Save: `dsgkd table-record runs/table records/table`, then keep the record "
                                   "(commit it, copy it off a spot node). Resume on another machine: `dsgkd "
                                   "table-record records/table runs/table`, then the same `dsgkd table` command: "
                                   "finished runs and searches are skipped, the notes and stand-ins regenerated "
                                   "from their seeds, what a remaining row needs rebuilt. `--render-only` reads a "
                                   "record as it reads a table.")
    p.add_argument("src", type=Path, metavar="SRC", help="a table's --out, or a record saved from one")
    p.add_argument("dest", type=Path, metavar="DEST", help="where the record goes (a record folder, or an --out to "
                                                           "resume in; refused if it holds another protocol's table)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dsgkd.experiments.table_record import copy_record

    written = copy_record(args.src, args.dest)
    print(f"{len(written)} files written to {args.dest} or removed there (the rest were already there)")
    return 0
