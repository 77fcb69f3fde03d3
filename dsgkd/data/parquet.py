"""A Parquet file read whole, a row group at a time, so that a damaged page is one line naming the rows it holds.

`pd.read_parquet` reads every row group in one call, and a page that does not decode (a bad copy, a disk error)
ends in whatever pyarrow raises: a thrift, snappy or Unicode traceback. `emr` reads through `read_parquet`, and
`stream` names damage in a record batch with the same `damaged_parquet` line.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dsgkd.errors import UserError


def read_parquet(path: Path) -> pd.DataFrame:
    """Every row of a Parquet file whose footer has already been read (so its schema is known to be sound)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    frames, start = [], 0
    for k in range(pf.num_row_groups):
        rows = pf.metadata.row_group(k).num_rows
        try:
            frames.append(pf.read_row_group(k).to_pandas())
        except Exception as e:  # pyarrow raises many types for a damaged page
            raise damaged_parquet(path, start, rows, e) from None
        start += rows
    return pd.concat(frames, ignore_index=True) if frames else pf.schema_arrow.empty_table().to_pandas()


def damaged_parquet(path: Path, start: int, rows: int, e: BaseException) -> UserError:
    """The error for rows `start + 1` to `start + rows` that do not decode. pyarrow's own message may quote a
    column's name or its statistics (cell values), so only its type is shown."""
    return UserError(f"{path}: rows {start + 1}-{start + rows} of this Parquet file are damaged "
                     f"({type(e).__name__}); re-export the file")
