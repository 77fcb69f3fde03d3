"""`dsgkd predict`: a trained student's probability and 0/1 label for every row of a file, streamed."""
from __future__ import annotations

import os

from dsgkd.cli.evaluate import add_model_args, check_batch_size, model_inputs
from dsgkd.constants import PREDICT_CHUNK_ROWS
from dsgkd.errors import UserError
from dsgkd.paths import check_outputs


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="probabilities and labels of a trained student for every row of a file",
                       description="Write OUT (CSV) with one row per input row, in input order: [the --id-col "
                                   "value,] prob (P(positive), calibrated by the temperature stored with the model) and label (1 iff prob >= the threshold stored with "
                                   "the model, else 0). Rows with empty text keep their place with an empty prob "
                                   "and label. The input is read, scored and written a chunk of rows at a time, "
                                   "so memory does not grow with the file; OUT appears only when complete.")
    add_model_args(p)
    p.add_argument("--id-col", help="copy this column into the output (e.g. a visit id)")
    p.add_argument("--out", required=True, metavar="PREDS.csv", help="output CSV (replaced if it exists)")
    p.add_argument("--chunk-rows", type=int, default=PREDICT_CHUNK_ROWS,
                   help=f"rows read and scored together (default: {PREDICT_CHUNK_ROWS})")
    p.set_defaults(func=run)


def run(args) -> int:
    check_batch_size(args)
    if args.chunk_rows < 1:
        raise UserError(f"--chunk-rows {args.chunk_rows}: must be at least 1")
    if not os.path.exists(args.data):
        raise UserError(f"--data {args.data}: no such file")
    check_outputs(model_inputs(args), files={"--out": args.out})

    from dsgkd.pipeline.serve import load_student, predict_file

    student = load_student(args.model, args.device)
    n = predict_file(student, args.data, args.out, text_col=args.text_col or student.meta["text_col"],
                     id_col=args.id_col, encoding=args.encoding or student.meta["encoding"],
                     batch_size=args.batch_size, chunk_rows=args.chunk_rows)
    print(f"wrote {n} rows to {args.out} (temperature {student.temperature:.6g}, threshold {student.threshold:.6g})")
    return 0
