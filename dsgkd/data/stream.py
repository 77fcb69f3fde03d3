"""A notes file read a chunk of rows at a time, for `dsgkd predict` on files too large to hold at once.

`emr` reads a labelled file whole, because training needs every row and validates every label before
the first step. Prediction needs neither: it reads the columns it was asked for in chunks, so memory is
bounded by one chunk whatever the file's size. The checks that can fail early do so before the first
chunk (file, format, columns; for text formats the encoding, by one streaming pass over the bytes), with
the same one-line messages as `emr`. A cell that is empty stays in its chunk as NaN: prediction keeps
every row, in order.

CSV / TSV and JSON lines stream; Parquet streams by record batch; a JSON array file is read whole (it
has no line structure to stream by); a `datasets` folder is refused with the conversion to use.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from dsgkd.data.emr import SUFFIXES, _first_line, read_table, require_columns
from dsgkd.data.encoding import BLOCK, check_encoding
from dsgkd.data.parquet import damaged_parquet
from dsgkd.errors import UserError

def iter_chunks(path, columns: list[str], encoding: str = "utf-8", rows: int = 4096
                ) -> Iterator[tuple[pd.DataFrame, float]]:
    """(the next at most `rows` rows, restricted to `columns` (distinct names) in that order; the fraction
    of the file read so far), in file order; an empty file yields nothing. Raises `UserError` at the call,
    before anything is yielded, for a file that cannot be read or lacks a column."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: a folder; predictions stream from a CSV, TSV, Parquet or JSONL file "
                        "(write a datasets folder out with Dataset.to_parquet first)")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unsupported format '{path.suffix}' (use .csv, .tsv, .parquet or .jsonl)")
    if kind == "parquet":
        return _parquet(path, columns, rows)
    codec = check_encoding(path, encoding)
    if kind == "jsonl":
        return _jsonl(path, columns, codec, rows)
    return _csv(path, columns, codec, kind, rows)


def _csv(path: Path, columns: list[str], codec: str, kind: str, rows: int):
    kw = dict(sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False, na_values=[""], encoding=codec)
    try:
        header = pd.read_csv(path, nrows=0, **kw)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: no rows (the file is empty)") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise UserError(f"{path}: not a valid {kind.upper()} file ({_first_line(e)})") from None
    require_columns(path, header.columns, columns)
    return _csv_rows(path, columns, kw, kind, rows)


def _csv_rows(path: Path, columns: list[str], kw: dict, kind: str, rows: int):
    size = max(1, path.stat().st_size)
    with open(path, "rb") as f:
        reader = pd.read_csv(f, chunksize=rows, **kw)  # all columns: a row with a field too many is an error
        while True:
            try:
                chunk = next(reader)
            except StopIteration:
                return
            except (pd.errors.ParserError, ValueError) as e:
                raise UserError(f"{path}: not a valid {kind.upper()} file ({_first_line(e)})") from None
            yield chunk[columns], min(1.0, f.tell() / size)


def _parquet(path: Path, columns: list[str], rows: int):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises many types for a damaged or non-Parquet file
        raise UserError(f"{path}: not a readable Parquet file ({_first_line(e)})") from None
    require_columns(path, pf.schema_arrow.names, columns)
    return _parquet_rows(path, pf, columns, rows)


def _parquet_rows(path: Path, pf, columns: list[str], rows: int):
    """Record batches of `rows`; a page that does not decode is one line naming the rows after the last good batch."""
    total, done = max(1, pf.metadata.num_rows), 0
    batches = pf.iter_batches(batch_size=rows, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:  # pyarrow raises many types for a damaged page
            raise damaged_parquet(path, done, pf.metadata.num_rows - done, e) from None
        done += batch.num_rows
        yield batch.to_pandas()[columns], done / total


def _jsonl(path: Path, columns: list[str], codec: str, rows: int):
    with open(path, encoding=codec) as f:
        is_array = f.read(BLOCK).lstrip().startswith("[")
    if is_array:
        frame = read_table(path, codec)
        require_columns(path, frame.columns, columns)
        return ((frame[columns].iloc[k:k + rows], min(1.0, (k + rows) / len(frame)))
                for k in range(0, len(frame), rows))
    return _jsonl_rows(path, columns, codec, rows)


def _jsonl_rows(path: Path, columns: list[str], codec: str, rows: int):
    """One JSON object per line; keys missing from a record are empty cells. A column that no record of
    the first chunk has is taken for a misspelt name, as a missing CSV column is."""
    size, first = max(1, path.stat().st_size), True
    with open(path, "rb") as raw:
        records: list[dict] = []
        seen: set[str] = set()
        for no, line in enumerate(io.TextIOWrapper(raw, encoding=codec), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {no}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise UserError(f"{path}: line {no}: expected a JSON object, got {type(rec).__name__}")
            records.append(rec)
            if first:
                seen.update(rec)
            if len(records) == rows:
                yield _frame(path, records, columns, seen if first else None), min(1.0, raw.tell() / size)
                records, first = [], False
        if records:
            yield _frame(path, records, columns, seen if first else None), 1.0


def _frame(path: Path, records: list[dict], columns: list[str], seen: set[str] | None) -> pd.DataFrame:
    if seen is not None:
        require_columns(path, sorted(seen), columns)
    return pd.DataFrame.from_records(records).reindex(columns=columns)[columns]
