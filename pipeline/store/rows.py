"""Event rows on their way into a store, shared by both stores and by replay: one row per
event id within a batch, and rows as Arrow columns."""

from __future__ import annotations

import nanoarrow as na
import pyarrow as pa

from pipeline.record import FIELDS, EventRow, provisional

EVENT_COLUMNS = ["ts" if f == "ts_us" else f for f in FIELDS]  # the stored column of each field


_TS = na.timestamp("us", timezone="UTC")


def rows_to_batch(rows: list[EventRow]) -> na.Array:
    """Transpose rows into Arrow columns (C-level zip; no per-field Python loop), built with
    nanoarrow: DuckDB scans them on the write path, where pyarrow's first conversion in a
    process would load its pandas support and compute functions (0.4 s of every `ingest`)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FIELDS)
    arrays = []
    for name, column in zip(FIELDS, columns, strict=True):
        if name == "ts_us":
            stamps = [None, na.c_buffer(column, na.int64())]
            arrays.append(na.c_array_from_buffers(_TS, len(column), stamps))
        else:
            arrays.append(na.c_array(column, na.string()))
    return _table(dict(zip(EVENT_COLUMNS, arrays, strict=True)), len(rows))


def rows_to_arrow(rows: list[EventRow]) -> pa.Table:
    """`rows_to_batch` as a pyarrow table, for replay's frames."""
    return pa.table(rows_to_batch(rows))


def ids_batch(ids: list[str]) -> na.Array:
    """One `event_id` column, as `rows_to_batch` builds it."""
    return _table({"event_id": na.c_array(ids, na.string())}, len(ids))


def _table(columns: dict[str, na.CArray], length: int) -> na.Array:
    """Named columns as one struct array: what DuckDB and pyarrow read as a table."""
    schema = na.struct({name: column.schema for name, column in columns.items()})
    children = list(columns.values())
    return na.Array(na.c_array_from_buffers(schema, length, [None], children=children))


def dedupe(rows: list[EventRow]) -> list[EventRow]:
    """One row per event_id within a batch: the first, unless a later complete row
    replaces a provisional one (rare; checked cheaply)."""
    ids = [r[0] for r in rows]
    if len(set(ids)) == len(ids):
        return rows
    chosen: dict[str, EventRow] = {}
    for row in rows:
        held = chosen.get(row[0])
        if held is None or (provisional(held.note) and not provisional(row.note)):
            chosen[row[0]] = row
    return list(chosen.values())
