"""The event log on Elasticsearch (contracts: `EventLog` in pipeline/store/base.py):
events in monthly indices, dead letters and checkpoints, as functions of a `Cluster`.
`ElasticsearchStore` orders the writes and refreshes before its reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.errors import StoreError
from pipeline.record import PROVISIONAL_NOTE, EventRow, provisional
from pipeline.sources.base import DeadLetter
from pipeline.store.base import GROUPABLE, Checkpoint, EventFilter
from pipeline.store.elasticsearch import reports
from pipeline.store.elasticsearch.schema import (
    EVENT_FIELDS,
    EVENT_SCHEMA,
    PAGE,
    action,
    blob,
    dead_id,
    event_batch,
    event_doc,
    frame,
    from_epoch,
    like_duckdb,
    month,
    now_iso,
    query,
)

if TYPE_CHECKING:
    from pipeline.store.elasticsearch.cluster import Action, Cluster

_HOUR_US = 3_600_000_000
_DEAD_COLUMNS = {
    "file": ("file", "str"),
    "line": ("line", "int"),
    "offset": ("offset", "int"),
    "idx": ("idx", "str"),
    "format": ("format", "str"),
    "reason": ("reason", "str"),
    "raw": ("raw", "blob"),
    "recorded_at": ("recorded_at", "time"),
}


# -- writes -------------------------------------------------------------------------------
def write_events(cluster: Cluster, rows: list[EventRow], touched: set[str]) -> int:
    """Create the events not stored yet in their months' indices (adding those to
    `touched`); return how many were new, counting a complete record that replaced a
    provisional one."""
    stamps = np.array([r[1] for r in rows], dtype="datetime64[us]")
    iso_stamps = np.datetime_as_string(stamps, unit="us").tolist()
    months = stamps.astype("datetime64[M]")
    names = [f"{cluster.prefix}-events-{month(m)}" for m in months]
    for name in set(names):
        cluster.ensure(name)
    touched.update(names)
    known = _across_months(cluster, rows, stamps, months, touched)
    actions = [
        action("create", index, row[0], event_doc(row, stamp))
        for row, index, stamp in zip(rows, names, iso_stamps, strict=True)
        if row[0] not in known
    ]
    items = cluster.bulk_checked(actions, accept=(409,))
    conflicts = {i["_id"] for i in items if i["status"] == 409}
    complete = [
        (row, index, stamp)
        for row, index, stamp in zip(rows, names, iso_stamps, strict=True)
        if row[0] in conflicts and not provisional(row.note)
    ]
    return sum(1 for i in items if i["status"] == 201) + _upgrade(cluster, complete)


def _across_months(
    cluster: Cluster,
    rows: list[EventRow],
    stamps: np.ndarray,
    months: np.ndarray,
    touched: set[str],
) -> set[str]:
    """An id is unique per index only, and a complete record may carry a later time
    than its provisional one: events within an hour of a month's edge are looked up in
    the neighbouring month too. Returns the ids found there (already stored); a
    provisional one found for a complete record is deleted instead, so the complete
    one is created in its own month."""
    hour = np.timedelta64(_HOUR_US, "us")
    near: dict[str, list[EventRow]] = {}
    for positions, step in (
        (np.flatnonzero(stamps - months.astype("datetime64[us]") < hour), -1),
        (np.flatnonzero((months + 1).astype("datetime64[us]") - stamps <= hour), 1),
    ):
        for i in positions.tolist():
            index = f"{cluster.prefix}-events-{month(months[i] + step)}"
            near.setdefault(index, []).append(rows[i])
    known: set[str] = set()
    deletes: list[Action] = []
    for index, group in near.items():
        stored = cluster.mget(index, [r[0] for r in group])
        for row, doc in zip(group, stored, strict=True):
            if doc is None:
                continue
            if provisional(doc["_source"].get(EVENT_FIELDS["note"])) and not provisional(row.note):
                deletes.append(action("delete", index, row[0]))
                touched.add(index)
            else:
                known.add(row[0])
    if deletes:
        cluster.bulk_checked(deletes, accept=(404,))
    return known


def _upgrade(cluster: Cluster, complete: list[tuple[EventRow, str, str]]) -> int:
    """Overwrite the stored provisional events these complete ones (row, index, time)
    conflicted with; return how many."""
    replace: list[Action] = []
    for start in range(0, len(complete), PAGE):
        part = {row[0]: (row, index, stamp) for row, index, stamp in complete[start : start + PAGE]}
        hits = (
            cluster.client.search(
                index=cluster.index("events"),
                query={
                    "bool": {
                        "filter": [
                            {"ids": {"values": list(part)}},
                            {"prefix": {EVENT_FIELDS["note"]: PROVISIONAL_NOTE}},
                        ]
                    }
                },
                size=len(part),
                source=False,
                track_total_hits=False,
                filter_path="hits.hits._id,hits.hits._index",
            )
            .body.get("hits", {})
            .get("hits", [])
        )
        for hit in hits:
            row, index, stamp = part[hit["_id"]]
            if hit["_index"] == index:
                replace.append(action("index", index, row[0], event_doc(row, stamp)))
    if replace:
        cluster.bulk_checked(replace)
    return len(replace)


def write_dead(cluster: Cluster, dead: Sequence[DeadLetter]) -> None:
    """Create-only with a content-derived id: the same letter twice is stored once."""
    index, now = cluster.index("dead-letters"), now_iso()
    cluster.ensure(index)
    cluster.bulk_checked(
        [
            action(
                "create",
                index,
                dead_id(d),
                {
                    "file": d.file,
                    "line": d.line,
                    "offset": d.offset,
                    "idx": d.index,
                    "format": d.format,
                    "reason": d.reason,
                    "raw": blob(d.raw),
                    "recorded_at": now,
                },
            )
            for d in dead
        ],
        accept=(409,),
    )


def write_checkpoints(cluster: Cluster, checkpoints: Sequence[Checkpoint]) -> None:
    cluster.ensure(cluster.index("checkpoints"))
    now = now_iso()
    cluster.bulk_checked(
        [
            action(
                "index",
                cluster.index("checkpoints"),
                cp.key,
                {
                    "key": cp.key,
                    "updated_at": now,
                    "position": {
                        "path": cp.path,
                        "device": cp.device,
                        "inode": cp.inode,
                        "offset": cp.offset,
                        "line": cp.line,
                        "fingerprint": cp.fingerprint,
                    },
                },
            )
            for cp in checkpoints
        ]
    )


# -- reads --------------------------------------------------------------------------------
def events(
    cluster: Cluster,
    where: EventFilter,
    limit: int | None,
    newest_first: bool,
) -> pd.DataFrame:
    order = "desc" if newest_first else "asc"
    index, sort = cluster.index("events"), [{"@timestamp": order}, {"event.id": "asc"}]
    if limit is not None:  # the first rows in order: one stream
        pages = cluster.pages(index, query(where, EVENT_FIELDS), sort, limit)
        table = pa.Table.from_batches(map(event_batch, pages), EVENT_SCHEMA)
        return like_duckdb(table.to_pandas())
    # All rows (training reads hundreds of thousands): slices of a point in time read
    # in parallel in index order, which spares the server a sort per page (half its
    # work), then sorted here.
    batches = cluster.sliced(
        index,
        query(where, EVENT_FIELDS),
        [{"_shard_doc": "asc"}],
        cluster.read_slices,
        partial(event_batch, sorted_by_time=False),
    )
    table = pa.Table.from_batches(batches, EVENT_SCHEMA)
    arrow_order = "descending" if newest_first else "ascending"
    table = table.sort_by([("ts", arrow_order), ("event_id", "ascending")])
    return like_duckdb(table.to_pandas())


def count(cluster: Cluster, where: EventFilter) -> int:
    return int(
        cluster.client.count(
            index=cluster.index("events"),
            query=query(where, EVENT_FIELDS),
            allow_no_indices=True,
            ignore_unavailable=True,
        )["count"]
    )


def stats(cluster: Cluster, by: str, where: EventFilter, limit: int | None) -> pd.DataFrame:
    """A composite aggregation paged to the end (exact counts, unlike `terms`), then
    ordered like DuckDB: most events first, ties by name, no value last. First and
    last times come from sorted top hits, exact to the µs (min/max give ms)."""
    if by not in GROUPABLE:
        raise StoreError(f"cannot group by {by!r}; choose one of {', '.join(GROUPABLE)}")
    rows = list(
        reports.composite(
            cluster,
            [(by, {"terms": {"field": EVENT_FIELDS[by], "missing_bucket": True}})],
            query(where, EVENT_FIELDS),
            {
                "denied": {"filter": {"term": {EVENT_FIELDS["outcome"]: "denied"}}},
                "first": _top_time("asc"),
                "last": _top_time("desc"),
            },
        )
    )
    table = pd.DataFrame(
        {
            by: pd.array([key[by] for key, _ in rows], dtype="str"),
            "events": np.array([b["doc_count"] for _, b in rows], dtype="int64"),
            "denied": np.array([b["denied"]["doc_count"] for _, b in rows], dtype="int64"),
            "first_seen": from_epoch([_top(b["first"]) for _, b in rows], "ns"),
            "last_seen": from_epoch([_top(b["last"]) for _, b in rows], "ns"),
        }
    )
    table = table.sort_values(
        ["events", by], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    return table.head(limit) if limit is not None else table


def dead_letters(cluster: Cluster, limit: int | None) -> pd.DataFrame:
    sort = [{"recorded_at": "asc"}, {"file": "asc"}, {"offset": "asc"}]
    return frame(cluster.sources("dead-letters", {"match_all": {}}, sort, limit), _DEAD_COLUMNS)


def checkpoint(cluster: Cluster, key: str) -> Checkpoint | None:
    doc = cluster.get("checkpoints", key)
    if doc is None:
        return None
    at = doc["position"]
    return Checkpoint(
        doc["key"],
        at["path"],
        at["device"],
        at["inode"],
        at["offset"],
        at["line"],
        at.get("fingerprint"),
    )


def _top_time(order: str) -> dict[str, Any]:
    return {"top_hits": {"size": 1, "sort": [{"@timestamp": order}], "_source": False}}


def _top(agg: Mapping[str, Any]) -> int:
    return int(agg["hits"]["hits"][0]["sort"][0])
