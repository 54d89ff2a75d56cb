"""Report aggregations on Elasticsearch (contracts in pipeline/store/base.py): composite
aggregations paged to the end, so every group is counted exactly however many there are.
First and last times come from min/max aggregations, which keep milliseconds."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.store.elasticsearch.schema import EVENT_FIELDS, from_epoch, iso

if TYPE_CHECKING:
    from pipeline.store.elasticsearch.cluster import Cluster

_BUCKETS = 5000  # per composite page
_SPAN = {"first_ts": {"min": {"field": "@timestamp"}}, "last_ts": {"max": {"field": "@timestamp"}}}
_DENIED = {"denied": {"filter": {"term": {EVENT_FIELDS["outcome"]: "denied"}}}}


def composite(
    store: Cluster,
    sources: list[tuple[str, dict[str, Any]]],
    where: dict[str, Any],
    aggs: Mapping[str, Any],
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(key, bucket) for every group of events matching `where`."""
    after: dict[str, Any] | None = None
    while True:
        spec: dict[str, Any] = {"size": _BUCKETS, "sources": [{n: s} for n, s in sources]}
        if after is not None:
            spec["after"] = after
        body = store.client.search(
            index=store.index("events"),
            query=where,
            size=0,
            track_total_hits=False,
            allow_no_indices=True,
            ignore_unavailable=True,
            aggs={"groups": {"composite": spec, "aggs": dict(aggs)}},
        ).body
        groups = (body.get("aggregations") or {}).get("groups")
        if not groups or not groups["buckets"]:
            return
        for bucket in groups["buckets"]:
            yield bucket["key"], bucket
        after = groups.get("after_key")
        if after is None or len(groups["buckets"]) < _BUCKETS:
            return


def access_summary(store: Cluster, since: datetime | None,
                   until: datetime) -> pd.DataFrame:  # fmt: skip
    keys = ["source", "backend", "identity", "identity_kind", "secret", "action",
            "operation", "outcome"]  # fmt: skip
    return _table(
        store,
        [_terms(k) for k in keys],
        _range(since, until),
        _SPAN,
        {"events": "count", "first_ts": "min", "last_ts": "max"},
    )


def hourly_activity(store: Cluster, since: datetime | None,
                    until: datetime) -> pd.DataFrame:  # fmt: skip
    return _table(
        store,
        [_terms("identity"), _histogram("hour", "1h")],
        _range(since, until),
        _DENIED,
        {"events": "count", "denied": "denied"},
    )


def source_coverage(store: Cluster, since: datetime | None,
                    until: datetime) -> pd.DataFrame:  # fmt: skip
    return _table(
        store,
        [_terms("source"), _terms("backend"), _histogram("day", "1d")],
        _range(since, until),
        _SPAN,
        {"events": "count", "first_ts": "min", "last_ts": "max"},
    )


def secret_history(store: Cluster, until: datetime) -> pd.DataFrame:
    keys = ["source", "backend", "secret", "action", "operation", "outcome"]
    where = _range(None, until)
    where["bool"]["filter"].append({"exists": {"field": EVENT_FIELDS["secret"]}})
    return _table(
        store,
        [_terms(k) for k in keys],
        where,
        _SPAN,
        {"events": "count", "first_ts": "min", "last_ts": "max"},
    )


def _terms(column: str) -> tuple[str, dict[str, Any]]:
    return column, {"terms": {"field": EVENT_FIELDS[column], "missing_bucket": True}}


def _histogram(column: str, interval: str) -> tuple[str, dict[str, Any]]:
    return column, {
        "date_histogram": {"field": "@timestamp", "calendar_interval": interval, "time_zone": "UTC"}
    }


def _range(since: datetime | None, until: datetime) -> dict[str, Any]:
    window = {"lt": iso(until)} | ({"gte": iso(since)} if since is not None else {})
    return {"bool": {"filter": [{"range": {"@timestamp": window}}]}}


def _table(
    store: Cluster,
    sources: list[tuple[str, dict[str, Any]]],
    where: dict[str, Any],
    aggs: Mapping[str, Any],
    metrics: Mapping[str, str],
) -> pd.DataFrame:
    """One row per group: the key columns (text, or UTC times for histograms), then
    `metrics` (column -> count, min, max or denied)."""
    rows = list(composite(store, sources, where, aggs))
    out: dict[str, Any] = {}
    for name, spec in sources:
        values = [key[name] for key, _ in rows]
        out[name] = (
            from_epoch(values, "ms") if "date_histogram" in spec else pd.array(values, dtype="str")
        )
    for column, metric in metrics.items():
        if metric == "count":
            out[column] = np.array([b["doc_count"] for _, b in rows], dtype="int64")
        elif metric == "denied":
            out[column] = np.array([b["denied"]["doc_count"] for _, b in rows], dtype="int64")
        else:
            out[column] = from_epoch([int(b[column]["value"]) for _, b in rows], "ms")
    return pd.DataFrame(out)
