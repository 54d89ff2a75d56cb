"""What the Elasticsearch store keeps where: field tables, strict mappings, the EventFilter
query, and conversions between documents and DataFrames. No I/O here."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from elasticsearch import ApiError

from pipeline.record import EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store.base import EventFilter
from pipeline.store.rows import EVENT_COLUMNS

SCHEMA_VERSION = 2  # 2: events gained `actor` (secretwatch.actor)
PAGE = 10_000  # hits per search request (Elasticsearch's default max_result_window)

# Our event column -> its Elasticsearch field, ECS where ECS has one. Reading maps back, so
# `events()` has DuckDB's columns.
EVENT_FIELDS: dict[str, str] = {
    "event_id": "event.id",
    "ts": "@timestamp",
    "source": "event.module",
    "backend": "service.name",
    "identity": "user.name",
    "identity_kind": "secretwatch.identity_kind",
    "secret": "secretwatch.secret",
    "action": "event.action",
    "operation": "secretwatch.operation",
    "outcome": "event.outcome",
    "source_ip": "source.ip",
    "user_agent": "user_agent.original",
    "request_id": "http.request.id",
    "error": "error.message",
    "note": "secretwatch.note",
    "actor": "secretwatch.actor",
}
_KEYWORD = {"type": "keyword"}
_LONG_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_NANOS = {"type": "date_nanos"}
_LONG = {"type": "long"}
_TEXT = {"type": "text"}  # ECS says match_only_text, a module minimal distributions lack
_BLOB = {"type": "binary"}  # base64 in _source, not searchable
_STORED = {"type": "text", "index": False}  # kept in _source only
EVENT_TYPES: dict[str, dict[str, Any]] = {
    **{field: _KEYWORD for field in EVENT_FIELDS.values()},
    "@timestamp": _NANOS,  # µs survive filters and sorts (`date` keeps ms)
    # Some sources name a service instead of an address (CloudTrail: `*.amazonaws.com`); the
    # value is kept in _source either way.
    "source.ip": {"type": "ip", "ignore_malformed": True},
    "user_agent.original": _LONG_KEYWORD,
    "error.message": _TEXT,
    "secretwatch.note": _LONG_KEYWORD,
}

# Alert column -> field; `repeats` and `folded_into` come from the folds index.
ALERT_FIELDS: dict[str, str] = {
    "id": "id",
    "ts": "@timestamp",
    "identity": "user.name",
    **{
        name: name
        for name in (
            "severity",
            "detectors",
            "score",
            "window_start",
            "window_end",
            "explanation",
            "evidence_count",
            "baseline_version",
            "body",
            "created_at",
            "updated_at",
            "revision",
            "resolution",
            "resolved_by",
            "resolved_at",
            "note",
        )
    },
}

# The indices besides the monthly events ones, by kind: `{prefix}-{kind}`.
KINDS: dict[str, dict[str, dict[str, Any]]] = {
    "dead-letters": {
        "file": _KEYWORD,
        "line": _LONG,
        "offset": _LONG,
        "idx": _KEYWORD,
        "format": _KEYWORD,
        "reason": _LONG_KEYWORD,
        "raw": _BLOB,
        "recorded_at": _NANOS,
    },
    # Read back by key only: the position stays unparsed (inodes can exceed a `long`).
    "checkpoints": {
        "key": _KEYWORD,
        "position": {"type": "object", "enabled": False},
        "updated_at": _NANOS,
    },
    "baselines": {
        "identity": _KEYWORD,
        "version": _LONG,
        "body": _BLOB,
        "generation": _KEYWORD,  # the save_detection call that wrote it: replace drops the rest
        "updated_at": _NANOS,
    },
    "detection-state": {"key": _KEYWORD, "value": _BLOB, "updated_at": _NANOS},
    "alerts": {
        "id": _KEYWORD,
        "@timestamp": _NANOS,
        "user.name": _KEYWORD,
        "severity": _KEYWORD,
        "detectors": _KEYWORD,
        "score": {"type": "double"},
        "window_start": _NANOS,
        "window_end": _NANOS,
        "explanation": _TEXT,
        "evidence_count": _LONG,
        "baseline_version": _LONG,
        "body": _STORED,
        "created_at": _NANOS,
        "updated_at": _NANOS,
        "revision": _LONG,
        "resolution": _KEYWORD,
        "resolved_by": _KEYWORD,
        "resolved_at": _NANOS,
        "note": _TEXT,
    },
    "deliveries": {  # one per (alert, sink)
        "alert_id": _KEYWORD,
        "sink": _KEYWORD,
        "delivered_revision": _LONG,
        "state": _KEYWORD,
        "attempts": _LONG,
        "next_attempt_at": _NANOS,
        "last_status": {"type": "integer"},
        "last_error": _STORED,
        "first_failed_at": _NANOS,
        "delivered_at": _NANOS,
        "updated_at": _NANOS,
    },
    "folds": {"alert_id": _KEYWORD, "into_id": _KEYWORD, "decided_at": _NANOS},
    "meta": {"value": _KEYWORD},
}


def mapping(types: Mapping[str, dict[str, Any]], **meta: Any) -> dict[str, Any]:
    """A strict mapping from dotted field names (`event.id` nests as event -> id).

    >>> mapping({"event.id": {"type": "keyword"}})["properties"]
    {'event': {'properties': {'id': {'type': 'keyword'}}}}
    """
    properties: dict[str, Any] = {}
    for dotted, spec in types.items():
        *parents, leaf = dotted.split(".")
        node = properties
        for parent in parents:
            node = node.setdefault(parent, {"properties": {}})["properties"]
        node[leaf] = spec
    return {
        "dynamic": "strict",
        "_meta": {"managed_by": "secretwatch", **meta},
        "properties": properties,
    }


def query(where: EventFilter, fields: Mapping[str, str]) -> dict[str, Any]:
    """EventFilter -> query, as DuckDB's `_where`: since inclusive, until exclusive, `*` the
    only wildcard, exact and case-sensitive otherwise.

    >>> query(EventFilter(identity="a?*"), EVENT_FIELDS)
    {'bool': {'filter': [{'wildcard': {'user.name': {'value': 'a\\\\?*'}}}]}}
    """
    clauses: list[dict[str, Any]] = []
    window: dict[str, str] = {}
    if where.since is not None:
        window["gte"] = iso(where.since)
    if where.until is not None:
        window["lt"] = iso(where.until)
    if window:
        clauses.append({"range": {fields["ts"]: window}})
    for name in ("identity", "secret", "action", "outcome", "source"):
        value = getattr(where, name)
        if value is None:
            continue
        field = fields[name]
        if name in ("identity", "secret") and "*" in value:
            pattern = value.replace("\\", "\\\\").replace("?", "\\?")
            clauses.append({"wildcard": {field: {"value": pattern}}})
        else:
            clauses.append({"term": {field: value}})
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


# -- events --------------------------------------------------------------------------------
EVENT_SCHEMA = pa.schema(
    [(c, pa.timestamp("us", tz="UTC") if c == "ts" else pa.string()) for c in EVENT_COLUMNS]
)
_UTC_MICROS = pa.timestamp("us", tz="UTC")
_ROW_FIELDS = [EVENT_FIELDS[c] for c in EVENT_COLUMNS if c != "ts"]  # row order, minus ts


def event_doc(row: EventRow, stamp: str) -> dict[str, Any]:
    """A row as its _source: flat dotted ECS names (Elasticsearch nests them itself),
    missing values left out; `stamp` is its time as ISO text without the zone."""
    doc: dict[str, Any] = {"@timestamp": stamp + "Z"}
    for field, value in zip(_ROW_FIELDS, (row[0], *row[2:]), strict=True):
        if value is not None:
            doc[field] = value
    return doc


def event_batch(hits: list[dict[str, Any]], sorted_by_time: bool = True) -> pa.RecordBatch:
    """A page of hits as Arrow columns. Hits sorted by time carry it as their first sort
    value (nanoseconds), so no text is parsed; others have it parsed from _source."""
    sources = [h["_source"] for h in hits]
    arrays = []
    for column in EVENT_COLUMNS:
        if column != "ts":
            arrays.append(pa.array([s.get(EVENT_FIELDS[column]) for s in sources], pa.string()))
        elif sorted_by_time:
            nanos = pa.array([h["sort"][0] for h in hits], pa.int64())
            arrays.append(pc.divide(nanos, 1000).cast(_UTC_MICROS))
        else:
            arrays.append(pa.array([s["@timestamp"] for s in sources]).cast(_UTC_MICROS))
    return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)


def month(value: np.datetime64) -> str:
    """The index suffix of a month.

    >>> month(np.datetime64("2026-05", "M"))
    '2026.05'
    """
    return str(value).replace("-", ".")


# -- frames --------------------------------------------------------------------------------
def frame(
    docs: Sequence[Mapping[str, Any]], columns: Mapping[str, tuple[str, str]]
) -> pd.DataFrame:
    """Documents as a DataFrame: `columns` maps each column to (field, kind), kind one of
    str, int, int32 (nullable), float, time, blob."""
    out: dict[str, Any] = {}
    for column, (field, kind) in columns.items():
        values = [d.get(field) for d in docs]
        if kind == "str":
            out[column] = pd.array(values, dtype="str")
        elif kind == "int":
            out[column] = np.array(values, dtype="int64")
        elif kind == "int32":
            out[column] = pd.array(values, dtype="Int32")
        elif kind == "float":
            out[column] = np.array(values, dtype="float64")
        elif kind == "time":
            out[column] = from_iso(values)
        else:
            out[column] = pd.Series([unblob(v) for v in values], dtype=object)
    return like_duckdb(pd.DataFrame(out))


def like_duckdb(table: pd.DataFrame) -> pd.DataFrame:
    """Text columns without any value as None objects, as DuckDB returns them (pandas
    would give NaN strings, which are truthy)."""
    for column in table.columns:
        if len(table) and table[column].dtype == "str" and table[column].isna().all():
            table[column] = pd.Series([None] * len(table), dtype=object, index=table.index)
    return table


# -- values --------------------------------------------------------------------------------
def iso(value: object) -> str:
    """A timestamp (datetime, or ISO-8601 text; naive means UTC) as date text with µs.

    >>> iso("2026-05-01T03:00:00+02:00")
    '2026-05-01T01:00:00.000000Z'
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def from_iso(values: list[str | None]) -> pd.Series:
    return pd.Series(
        pd.to_datetime(values, utc=True, format="ISO8601"), dtype="datetime64[us, UTC]"
    )


def to_datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def from_epoch(values: list[int], unit: str) -> pd.Series:
    """Epoch integers (`ns` sort values, `ms` aggregation keys) as UTC timestamps."""
    divisor = {"ns": 1000, "ms": 1}[unit]
    numbers = np.array([v // divisor for v in values], dtype="int64")
    return pd.Series(
        pd.to_datetime(numbers, unit="us" if unit == "ns" else "ms", utc=True),
        dtype="datetime64[us, UTC]",
    )


def blob(value: bytes | None) -> str | None:
    return base64.b64encode(value).decode() if value is not None else None


def unblob(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value is not None else None


def action(
    op: str, index: str, doc_id: str, doc: Mapping[str, Any] | None = None, **meta: Any
) -> tuple[bytes, bytes | None]:
    """One bulk action as its two NDJSON lines (the second None for a delete)."""
    header = orjson.dumps({op: {"_index": index, "_id": doc_id, **meta}})
    return header, (orjson.dumps(doc) if doc is not None else None)


def dead_id(d: DeadLetter) -> str:
    """The dead-letter identity DuckDB deduplicates on: file, offset, index, reason, raw."""
    digest = hashlib.sha256()
    for part in (d.file, str(d.offset), d.index or "\x00", d.reason):
        digest.update(part.encode() + b"\x1f")
    digest.update(d.raw if d.raw is not None else b"\x00")
    return digest.hexdigest()


def delivery_id(alert_id: str, sink: str) -> str:
    return hashlib.sha256(f"{alert_id}\x1f{sink}".encode()).hexdigest()


def reason(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    return str((error.get("reason") if isinstance(error, dict) else None) or exc.message)


def public(url: str) -> str:
    """The URL without any user info, for messages.

    >>> public("https://user:pw@es.example:9243/")
    'https://es.example:9243'
    """
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"
