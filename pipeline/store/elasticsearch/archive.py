"""The Elasticsearch store as an `ArchiveSource` (pipeline/archive/source.py): whole UTC days
of one source's events, counted, read in (ts, event_id) order and deleted once archived.

Elasticsearch has no transactions, so `drop_day` checks the count before it deletes (and
deletes nothing when it differs), deletes exactly the events it counted, and checks after
(the day must then be empty): a difference means someone wrote to that day meanwhile, and
the error says how many were deleted and how many are left, so the archiver's next run
settles it by event id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline.errors import StoreError
from pipeline.store.elasticsearch import reports
from pipeline.store.elasticsearch.schema import (
    EVENT_FIELDS,
    EVENT_SCHEMA,
    action,
    event_batch,
    iso,
)

if TYPE_CHECKING:
    from pipeline.store.elasticsearch.cluster import Cluster

_SORT = [{EVENT_FIELDS["ts"]: "asc"}, {EVENT_FIELDS["event_id"]: "asc"}]
_DAY = {
    "date_histogram": {"field": EVENT_FIELDS["ts"], "calendar_interval": "1d", "time_zone": "UTC"}
}


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def month_index(cluster: Cluster, day: date) -> str:
    """The index holding a day's events: events live in their own month's index."""
    return f"{cluster.prefix}-events-{day.year:04d}.{day.month:02d}"


def day_query(day: date, source: str) -> dict[str, Any]:
    start = day_start(day)
    return {
        "bool": {
            "filter": [
                {
                    "range": {
                        EVENT_FIELDS["ts"]: {"gte": iso(start), "lt": iso(start + timedelta(1))}
                    }
                },
                {"term": {EVENT_FIELDS["source"]: source}},
            ]
        }
    }


def archivable_days(cluster: Cluster, before: datetime) -> list[tuple[date, str, int]]:
    """(day, source, count) of each UTC day wholly before `before` with events, in (day,
    source) order: a composite aggregation of days by source, paged to the end."""
    if before.tzinfo is None:
        before = before.replace(tzinfo=UTC)
    cut = day_start(before.astimezone(UTC).date())  # a day ends at or before `before`
    where = {"range": {EVENT_FIELDS["ts"]: {"lt": iso(cut)}}}
    sources = [("day", _DAY), ("source", {"terms": {"field": EVENT_FIELDS["source"]}})]
    return [
        (datetime.fromtimestamp(key["day"] / 1000, UTC).date(), key["source"], bucket["doc_count"])
        for key, bucket in reports.composite(cluster, sources, where, {})
        if bucket["doc_count"]
    ]


def day_events(cluster: Cluster, day: date, source: str) -> pa.Table:
    """A day's events of a source in (ts, event_id) order: `read_slices` slices of one point
    in time read in parallel in index order (consistent while others write, and no sort
    for the server), then sorted here, bytewise by id as DuckDB sorts."""
    batches = cluster.sliced(
        month_index(cluster, day),
        day_query(day, source),
        [{"_shard_doc": "asc"}],
        cluster.read_slices,
        partial(event_batch, sorted_by_time=False),
    )
    table = pa.Table.from_batches(batches, EVENT_SCHEMA)
    return table.sort_by([("ts", "ascending"), ("event_id", "ascending")])


def count_day(cluster: Cluster, day: date, source: str) -> int:
    index = month_index(cluster, day)
    cluster.refresh({index})
    return int(
        cluster.client.count(
            index=index,
            query=day_query(day, source),
            allow_no_indices=True,
            ignore_unavailable=True,
        )["count"]
    )


def drop_day(
    cluster: Cluster, day: date, source: str, expected: int, read: Sequence[str] | None = None
) -> int:
    """Delete the day's events of a source if exactly `expected` are there (else delete
    nothing); raise StoreError saying what happened when the deletion did not remove
    exactly those. Returns how many were deleted.

    Events are deleted by id in bulk, not by `_delete_by_query` (a module minimal
    distributions lack): the ids `day_events` read (`read`, as the archiver wrote them),
    else the ids there now (one point in time). An event written to that day after they
    were taken is not among them, so it stays hot instead of being deleted unarchived."""
    index, what = month_index(cluster, day), f"{source} events of {day.isoformat()}"
    if read is not None and len(read) == expected:
        found, ids = count_day(cluster, day, source), list(read)
    else:
        cluster.refresh({index})
        ids = [
            hit["_id"]
            for hits in cluster.pages(index, day_query(day, source), _SORT, source=False)
            for hit in hits
        ]
        found = len(ids)
    if found != expected:
        raise StoreError(
            f"{index} holds {found} {what}, not the {expected} archived; nothing deleted "
            "(events arrived or left since they were read): run `secretwatch archive` again"
        )
    if not ids:
        return 0
    items = cluster.bulk([action("delete", index, doc_id) for doc_id in ids])
    deleted = sum(1 for item in items if item["status"] == 200)
    failed = [item for item in items if item["status"] not in (200, 404)]
    left = count_day(cluster, day, source)  # refreshes first
    if deleted != expected or failed or left:
        note = f"; e.g. {failed[0]['_id']!r}: {failed[0]['status']}" if failed else ""
        raise StoreError(
            f"deleting the {expected} archived {what} from {index} deleted {deleted}, "
            f"{len(failed)} failed and {left} are there now (another process wrote or "
            f"deleted some meanwhile){note}; the archive holds every event it read: run "
            "`secretwatch archive` again to settle the rest"
        )
    return deleted
