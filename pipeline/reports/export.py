"""CSV and JSON copies of every table, for the reviewer's own tooling: UTC timestamps in
ISO-8601 with `Z`, empty cells (CSV) or null (JSON) where there is no value, rows in the
tables' own order, `\\n` line ends, so a rerun writes the same bytes.

Columns are converted whole (vectorized), not cell by cell: a quarter's accessor table
can hold tens of thousands of rows.

Text cells of a CSV that a spreadsheet would run as a formula (an identity `=HYPERLINK(...)`
taken from an audit log) are written with a leading `'` (`spreadsheet_safe`, OWASP's advice
on CSV injection); numbers stay numbers, and the JSON copies keep every value as it is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

STAMP = "%Y-%m-%dT%H:%M:%SZ"


def column_values(series: pd.Series) -> list[object]:
    """One column as JSON-ready Python values: stamps as text, missing as None."""
    values: list[object]
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series):
        text = series.dt.tz_convert("UTC") if series.dt.tz is not None else series
        values = text.dt.strftime(STAMP).tolist()
    else:
        values = series.tolist()
    mask = series.isna().to_numpy()
    if mask.any():
        return [None if missing else v for v, missing in zip(values, mask, strict=True)]
    if series.dtype == object:
        return [_native(v) for v in values]
    return values


def _native(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").strftime(STAMP)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    columns = list(frame.columns)
    values = [column_values(frame[c]) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def to_csv(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(frame.columns)
    columns = [[_text(v) for v in column_values(frame[c])] for c in frame.columns]
    writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue().encode()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return str(value)


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"): `=`, `+`, `-`,
# `@` (also full-width, which some spreadsheets fold to ASCII) first, even after leading
# white space; a tab or carriage return first.
_FORMULA = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")


def spreadsheet_safe(text: str) -> str:
    """A text cell as written to every CSV: prefixed with `'` when a spreadsheet would
    otherwise run it as a formula, else unchanged. Numbers are not text: a number column
    never passes through here, so `-3` stays a number.

    >>> spreadsheet_safe("=1+2"), spreadsheet_safe(" @SUM(A1)"), spreadsheet_safe("a=b")
    ("'=1+2", "' @SUM(A1)", 'a=b')
    """
    if text[:1] in ("\t", "\r") or text.lstrip()[:1] in _FORMULA:
        return "'" + text
    return text


def to_json(frame: pd.DataFrame) -> bytes:
    return orjson.dumps(records(frame), option=orjson.OPT_INDENT_2) + b"\n"


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content (names, then each column's values), fast enough for a
    million rows: integers and stamps by their 64-bit values, text joined by NUL bytes.
    Two frames with equal columns, values and order give the same digest."""
    h = hashlib.sha256()
    for name in frame.columns:
        series = frame[name]
        h.update(f"\x1e{name}\x1f{series.dtype}\x1f".encode())
        if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            h.update("\x00".join("\x01" if v is None else str(v) for v in series.tolist()).encode())
        else:
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            data = series.to_numpy()
            if data.dtype.kind == "M":
                data = data.astype("datetime64[s]").astype("int64")
            h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """`csv/<name>.csv` and `json/<name>.json` for every table; the paths written."""
    written = []
    for kind, encode in (("csv", to_csv), ("json", to_json)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name in sorted(tables):
            path = folder / kind / f"{name}.{kind}"
            path.write_bytes(encode(tables[name]))
            written.append(path)
    return written
