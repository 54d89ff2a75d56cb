"""Event rows on their way into a store, shared by both stores and by replay: one row per
event id within a batch, and rows as Arrow columns."""

from __future__ import annotations

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
