"""Event rows on their way into a store, shared by both stores and by replay: one row per
event id within a batch, and rows as Arrow columns."""

from __future__ import annotations

import nanoarrow as na
import pyarrow as pa

from pipeline.record import FIELDS, PROVISIONAL_NOTE, EventRow

EVENT_COLUMNS = ["ts" if f == "ts_us" else f for f in FIELDS]  # the stored column of each field


def rows_to_arrow(rows: list[EventRow]) -> pa.Table:
    """Transpose rows into Arrow columns (C-level zip; no per-field Python loop)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FIELDS)
    arrays = []
    for name, column in zip(FIELDS, columns, strict=True):
        if name == "ts_us":
            arrays.append(pa.array(column, pa.int64()).cast(pa.timestamp("us", tz="UTC")))
        else:
            arrays.append(pa.array(column, pa.string()))
    return pa.Table.from_arrays(arrays, names=EVENT_COLUMNS)


_TS = na.timestamp("us", timezone="UTC")


def rows_to_batch(rows: list[EventRow]) -> na.Array:
    """`rows_to_arrow`'s columns built with nanoarrow, for DuckDB to scan on the write path:
    pyarrow's first conversion in a process loads its pandas support and compute functions
    (0.4 s of every `ingest`), nanoarrow loads nothing, and builds the columns as fast."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FIELDS)
    arrays = []
    for name, column in zip(FIELDS, columns, strict=True):
        if name == "ts_us":
            stamps = [None, na.c_buffer(column, na.int64())]
            arrays.append(na.c_array_from_buffers(_TS, len(column), stamps))
        else:
            arrays.append(na.c_array(column, na.string()))
    fields = zip(EVENT_COLUMNS, arrays, strict=True)
    schema = na.struct({name: array.schema for name, array in fields})
    return na.Array(na.c_array_from_buffers(schema, len(rows), [None], children=arrays))


def ids_batch(ids: list[str]) -> na.Array:
    """One `event_id` column, as `rows_to_batch` builds it."""
    column = na.c_array(ids, na.string())
    schema = na.struct({"event_id": column.schema})
    return na.Array(na.c_array_from_buffers(schema, len(ids), [None], children=[column]))


def dedupe(rows: list[EventRow]) -> list[EventRow]:
    """One row per event_id within a batch: the first, unless a later complete row
    replaces a provisional one (rare; checked cheaply)."""
    ids = [r[0] for r in rows]
    if len(set(ids)) == len(ids):
        return rows
    chosen: dict[str, EventRow] = {}
    for row in rows:
        held = chosen.get(row[0])
        if held is None or (held.note == PROVISIONAL_NOTE and row.note != PROVISIONAL_NOTE):
            chosen[row[0]] = row
    return list(chosen.values())
