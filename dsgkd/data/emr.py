"""Labelled EMR notes → `datasets.Dataset(text, label[, group])`, validated and split.

Hospital exports are messy (cp949 bytes, blank notes, "1.0" labels, stray values), and a bad row
found after an hour of training wastes the hour. So everything is checked at load time, and every
problem the user can fix raises `UserError` with one line naming the file, the column and the row.
Row numbers are 1-based as the user sees them: "data row N" for CSV/TSV (the header is not
counted), "line N" for JSONL, "row N" for Parquet and `datasets` folders. The notes are protected health
information, so no message quotes a cell or a header (a header-less file's header is its first note): they
appear only as `redact.mask` shows them, and group (patient) ids not at all.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import datasets
import numpy as np
import pandas as pd

from dsgkd.config import DataConfig
from dsgkd.data.encoding import check_encoding, codec_for
from dsgkd.data.parquet import read_parquet
from dsgkd.errors import UserError
from dsgkd.redact import mask

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet",
            ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

RowNamer = Callable[[int], str]


@dataclass
class Splits:
    train: datasets.Dataset
    val: datasets.Dataset
    test: datasets.Dataset
    dropped_empty: int
    fingerprint: str  # all three splits: what a trained model's record names as its data
    fit_fingerprint: str  # train and validation only: what a fit reads, so what caches of fits key on


# ---------------------------------------------------------------------------------------- reading
def read_table(path, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a table by suffix; CSV/TSV cells come back as str (NaN for empty) so labels keep their
    spelling ("01" stays "01") and validation sees exactly what the file holds."""
    return _read(Path(path), encoding)[0]


def _read(path: Path, encoding: str) -> tuple[pd.DataFrame, RowNamer]:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        return _read_dataset_dir(path), lambda i: f"row {i + 1}"
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unsupported format '{path.suffix}' "
                        f"(use .csv, .tsv, .parquet, .jsonl or a datasets.save_to_disk folder)")
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as e:  # pyarrow raises many types for a damaged or non-Parquet file
            raise UserError(f"{path}: not a readable Parquet file ({_first_line(e)})") from None
        _unique_columns(path, names)
        return read_parquet(path), lambda i: f"row {i + 1}"
    text = _decode(path, encoding)
    if kind == "jsonl":
        return _parse_json(path, text)
    try:
        df = pd.read_csv(io.StringIO(text), sep="\t" if kind == "tsv" else ",", dtype=str,
                         keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: no rows (the file is empty)") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise UserError(f"{path}: not a valid {kind.upper()} file ({_first_line(e)})") from None
    sep = "\t" if kind == "tsv" else ","
    _unique_columns(path, next((rec for rec in csv.reader(io.StringIO(text), delimiter=sep) if rec), []))
    return df, _csv_row_namer(text, sep, len(df))


def _unique_columns(path: Path, names: list[str]) -> None:
    """pandas reads a CSV header `NAME,NAME` as `NAME` and `NAME.1`, so the column a user names would
    silently be the first of two; a repeated name is an error instead."""
    seen: set[str] = set()
    for k, name in enumerate(names, start=1):
        if name in seen:
            raise UserError(f"{path}: column {k} of the header ({mask(name)}) repeats an earlier column's name; "
                            "rename or drop one")
        seen.add(name)


def _csv_row_namer(text: str, sep: str, n: int) -> RowNamer:
    """'data row N (line L)': notes contain quoted newlines, so the line a row starts on is found by
    re-reading with the csv module — lazily, only when an error needs it."""
    @functools.lru_cache(maxsize=1)
    def starts() -> list[int]:
        reader, out, prev = csv.reader(io.StringIO(text), delimiter=sep), [], 0
        for rec in reader:
            if rec:
                out.append(prev + 1)
            prev = reader.line_num
        return out[1:]  # drop the header

    def name(i: int) -> str:
        try:
            lines = starts() if n == len(starts()) else None
        except csv.Error:
            lines = None
        return f"data row {i + 1} (line {lines[i]})" if lines else f"data row {i + 1} (header not counted)"
    return name


def _decode(path: Path, encoding: str) -> str:
    """The whole file as text; a bad byte is the one-line error `encoding.check_encoding` gives."""
    codec = codec_for(encoding)
    raw = path.read_bytes()
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        check_encoding(path, encoding)  # raises, naming the byte, its line and a codec that decodes the file
        raise


def _parse_json(path: Path, text: str) -> tuple[pd.DataFrame, RowNamer]:
    """JSON lines (or one JSON array); parsed line by line so a broken record is named by line."""
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
        lines = list(range(1, len(records) + 1))
        where = "record"
    else:
        records, lines, where = [], [], "line"
        for no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {no}: not valid JSON ({e.msg})") from None
            lines.append(no)
    for rec, no in zip(records, lines):
        if not isinstance(rec, dict):
            raise UserError(f"{path}: {where} {no}: expected a JSON object, got {type(rec).__name__}")
    return pd.DataFrame.from_records(records), lambda i: f"{where} {lines[i]}"


def _read_dataset_dir(path: Path) -> pd.DataFrame:
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # FileNotFoundError / ValueError for a folder that is not a saved dataset
        raise UserError(f"{path}: a folder, but not a datasets.save_to_disk dataset ({_first_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise UserError(f"{path}: a DatasetDict with splits {sorted(ds)}; pass one split's folder "
                            f"(e.g. {path / next(iter(ds))})")
        ds = next(iter(ds.values()))
    return ds.to_pandas()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ------------------------------------------------------------------------------------- validation
def load_labelled(path, text_col: str, label_col: str, group_col: str | None = None,
                  encoding: str = "utf-8", classes: list[str] | None = None
                  ) -> tuple[datasets.Dataset, int]:
    """One labelled file → (Dataset, rows dropped for empty text).

    Empty notes are dropped with a warning rather than rejected because exports routinely contain
    them and they carry no information; every other defect is an error because guessing would
    silently change the task.
    """
    path = Path(path)
    df, row = _read(path, encoding)
    if len(df) == 0:
        raise UserError(f"{path}: no rows")
    require_columns(path, df.columns, [text_col, label_col] + ([group_col] if group_col else []))

    text = df[text_col].map(lambda v: "" if _missing(v) else str(v))
    keep = text.str.strip() != ""
    dropped = int((~keep).sum())
    if dropped:
        warnings.warn(f"dropped {dropped} rows with empty text in {path} (column '{text_col}')", stacklevel=2)
    if not keep.any():
        raise UserError(f"{path}: no rows left after dropping {dropped} with empty text in column '{text_col}'")
    positions = np.flatnonzero(keep.to_numpy())

    labels = _encode_labels(path, df[label_col].iloc[positions], positions, row, label_col, classes)
    if len(np.unique(labels)) < 2:
        raise UserError(f"{path}: only one class ({_class_name(labels[0], classes)}) in column "
                        f"'{label_col}'; need both positive and negative notes")
    cols: dict[str, Any] = {"text": text.iloc[positions].tolist(), "label": labels}
    features = {"text": datasets.Value("string"), "label": datasets.Value("int64")}
    if group_col:
        groups = df[group_col].iloc[positions]
        bad = [i for i, v in zip(positions, groups) if _missing(v)]
        if bad:
            raise UserError(f"{path}: {row(bad[0])}: missing value in group column '{group_col}'")
        cols["group"] = [_norm_scalar(v) for v in groups]
        features["group"] = datasets.Value("string")
    return datasets.Dataset.from_dict(cols, features=datasets.Features(features)), dropped


SHOWN_COLUMNS = 8  # headers a missing-column message shows (masked): enough to spot a misspelling


def require_columns(path: Path, columns, wanted: list[str]) -> None:
    """Each of `wanted` (names the user gave) is a column of the file, or one line naming it; the file's own
    headers are shown masked, since a file without a header row has its first note there."""
    columns = list(columns)
    for col in wanted:
        if col not in columns:
            have = ", ".join(mask(c) for c in columns[:SHOWN_COLUMNS])
            more = f", and {len(columns) - SHOWN_COLUMNS} more" if len(columns) > SHOWN_COLUMNS else ""
            raise UserError(f"{path}: no column '{col}' (the file's {len(columns)} columns: {have}{more})")


def _missing(v: Any) -> bool:
    return v is None or (not isinstance(v, (str, list, dict, np.ndarray)) and bool(pd.isna(v)))


def _norm_scalar(v: Any) -> str:
    """Spell a cell the way a user would declare it: 1, 1.0, True and "1" all become "1"."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        return str(int(v))
    s = str(v).strip()
    try:
        f = float(s)
        if math.isfinite(f) and f.is_integer() and s.lstrip("+-").replace(".", "", 1).isdigit():
            return str(int(f))
    except ValueError:
        pass
    return s


def _encode_labels(path: Path, values: pd.Series, positions: np.ndarray, row: RowNamer,
                   col: str, classes: list[str] | None) -> np.ndarray:
    if classes is not None:
        names = [str(c).strip() for c in classes]
        if len(names) < 2 or len(set(names)) != len(names):
            raise UserError(f"data.classes: need at least two distinct label values, got {classes}")
        index = {n: i for i, n in enumerate(names)}
        index.update({_norm_scalar(n): i for i, n in enumerate(names) if _norm_scalar(n) not in index})
        allowed = f"one of the declared classes {names}"
    else:
        index = {"0": 0, "1": 1}
        allowed = "0 or 1 (declare other label values with data.classes, negative first)"
    out = np.empty(len(values), dtype=np.int64)
    for k, (pos, v) in enumerate(zip(positions, values)):
        if _missing(v):
            raise UserError(f"{path}: {row(pos)}: missing label in column '{col}'")
        key = v.strip() if isinstance(v, str) else _norm_scalar(v)
        i = index.get(key, index.get(_norm_scalar(key)))
        if i is None:
            raise UserError(f"{path}: {row(pos)}: label {mask(v)} in column '{col}' is not {allowed}")
        out[k] = i
    return out


def _class_name(i: int, classes: list[str] | None) -> str:
    return f"label {classes[i]!r}" if classes else f"label {i}"


# ------------------------------------------------------------------------------------------ splits
def load_splits(cfg: DataConfig) -> Splits:
    """Files given are used as they are; whatever split is missing is cut from `cfg.path`, stratified
    by label (and group-wise when `group_col` is set, so no patient leaks across splits), with
    `split_seed` so a search, its export and the final re-run see the same notes."""
    if not cfg.path:
        raise UserError("data.path (--data) is not set: the labelled notes to train on")
    kw = dict(text_col=cfg.text_col, label_col=cfg.label_col, group_col=cfg.group_col,
              encoding=cfg.encoding, classes=cfg.classes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full, dropped = load_labelled(cfg.path, **kw)
        val = test = None
        if cfg.val_path:
            val, d = load_labelled(cfg.val_path, **kw)
            dropped += d
        if cfg.test_path:
            test, d = load_labelled(cfg.test_path, **kw)
            dropped += d
    for w in caught:  # re-issue so they point at the caller, not at this module
        warnings.warn(w.message, w.category, stacklevel=2)

    # Fractions are of the whole file, so sizes are fixed up front (no float drift between cuts).
    train, n = full, len(full)
    if test is None:
        train, test = _holdout(train, max(1, round(cfg.test_frac * n)), cfg.split_seed, "test", cfg.path)
    if val is None:
        train, val = _holdout(train, max(1, round(cfg.val_frac * n)), cfg.split_seed, "val", cfg.path)

    for name, ds in (("train", train), ("val", val), ("test", test)):
        if len(set(ds["label"])) < 2:
            raise UserError(f"{cfg.path}: the {name} split has only one class; "
                            f"add notes of the other class or give --{name} explicitly")
    if cfg.group_col:
        _warn_group_overlap(train, val, test, cfg)
    return Splits(train, val, test, dropped, fingerprint(train, val, test), fingerprint(train, val))


def _holdout(ds: datasets.Dataset, size: int, seed: int, what: str, source: str
             ) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Cut `size` rows (about `size` when group-wise: whole groups move) out of `ds`."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    labels = np.asarray(ds["label"])
    n = len(labels)
    frac = size / n
    counts = dict(zip(*np.unique(labels, return_counts=True)))
    counts = {int(k): int(v) for k, v in counts.items()}
    if "group" in ds.column_names:
        groups = np.asarray(ds["group"])
        k = max(2, round(1 / frac))
        if len(np.unique(groups)) < k:
            raise UserError(f"{source}: only {len(np.unique(groups))} distinct groups; a group-wise "
                            f"{frac:.0%} {what} split needs at least {k} (give --{what} explicitly)")
        with warnings.catch_warnings():  # "least populated class" is expected for small sets
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            keep, out = next(cv.split(np.zeros(n), labels, groups))
    else:
        try:
            keep, out = train_test_split(np.arange(n), test_size=size, stratify=labels, random_state=seed)
        except ValueError as e:
            raise UserError(f"{source}: cannot cut a stratified {frac:.0%} {what} split from {n} notes "
                            f"(class counts {counts}): {_first_line(e)}; add notes or give --{what}") from None
    return ds.select(np.sort(keep)), ds.select(np.sort(out))


def _warn_group_overlap(train, val, test, cfg: DataConfig) -> None:
    tr = set(train["group"])
    for name, ds in (("val", val), ("test", test)):
        both = tr & set(ds["group"])
        if both:
            warnings.warn(f"{len(both)} groups (column '{cfg.group_col}') appear in both train and {name}",
                          stacklevel=3)


def fingerprint(*splits: datasets.Dataset) -> str:
    """Content hash, not a path or mtime hash, so a cache stays valid when a file is copied and is
    invalidated when one note or one split assignment changes."""
    h = hashlib.sha256()
    for k, ds in enumerate(splits):
        h.update(f"\x1e{k}:{len(ds)}".encode())
        groups = ds["group"] if "group" in ds.column_names else [""] * len(ds)
        for t, y, g in zip(ds["text"], ds["label"], groups):
            h.update(f"{t}\x1f{y}\x1f{g}\x1d".encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------- unlabelled
def load_unlabeled(path, text_col: str, encoding: str = "utf-8", limit: int | None = None) -> list[str]:
    """Texts for the KD transfer set. A `.txt` file is read as one note per line, since unlabelled
    dumps are often plain text; `text_col` is then ignored."""
    path = Path(path)
    if path.suffix.lower() == ".txt" and path.is_file():
        texts = _decode(path, encoding).splitlines()
    else:
        df, _ = _read(path, encoding)
        if len(df) == 0:
            raise UserError(f"{path}: no rows")
        require_columns(path, df.columns, [text_col])
        texts = ["" if _missing(v) else str(v) for v in df[text_col]]
    kept = [t for t in texts if t.strip()]
    if len(kept) < len(texts):
        warnings.warn(f"dropped {len(texts) - len(kept)} rows with empty text in {path}", stacklevel=2)
    if not kept:
        raise UserError(f"{path}: no rows left after dropping empty text")
    return kept[:limit] if limit is not None else kept
