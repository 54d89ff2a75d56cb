"""The alert outbox on Elasticsearch (contracts in pipeline/store/base.py).

Elasticsearch has no joins: alerts are read in pages (a point in time) and each page's
delivery records and folds are fetched by id. Updates are read-modify-write with optimistic
concurrency (`ElasticsearchStore.rewrite`), since scripted updates need a module minimal
distributions lack. A fold verdict is a create-only document: the first one wins."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
from elasticsearch import ConflictError

from pipeline.errors import StoreError
from pipeline.store import outbox_rules as rules
from pipeline.store.base import DeliveryOutcome, EventFilter, PendingDelivery
from pipeline.store.elasticsearch.schema import (
    ALERT_FIELDS,
    delivery_id,
    frame,
    iso,
    now_iso,
    public,
    query,
    to_datetime,
)

if TYPE_CHECKING:
    from pipeline.store.elasticsearch.cluster import Cluster

_ALERT_KINDS = {
    "score": "float",
    "evidence_count": "int",
    "baseline_version": "int",
    "revision": "int",
    "ts": "time",
    "window_start": "time",
    "window_end": "time",
    "created_at": "time",
    "updated_at": "time",
    "resolved_at": "time",
}
# alerts() columns, in DuckDB's order: (field, kind)
ALERT_COLUMNS: dict[str, tuple[str, str]] = {
    **{c: (f, _ALERT_KINDS.get(c, "str")) for c, f in ALERT_FIELDS.items()},
    "repeats": ("repeats", "int"),
    "folded_into": ("folded_into", "str"),
}
_DELIVERY_KINDS = {
    "ts": "time",
    "revision": "int",
    "delivered_revision": "int",
    "attempts": "int",
    "next_attempt_at": "time",
    "last_status": "int32",
    "first_failed_at": "time",
    "delivered_at": "time",
    "repeats": "int",
}
_DELIVERY_COLUMNS: dict[str, tuple[str, str]] = {
    c: (c, _DELIVERY_KINDS.get(c, "str"))
    for c in (
        "alert_id",
        "sink",
        "ts",
        "identity",
        "severity",
        "detectors",
        "revision",
        "delivered_revision",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status",
        "last_error",
        "first_failed_at",
        "delivered_at",
        "resolution",
        "repeats",
        "folded_into",
    )
}


class Outbox:
    def __init__(self, store: Cluster) -> None:
        self.store = store

    # -- reads ---------------------------------------------------------------------------
    def alerts(
        self,
        since: datetime | None,
        until: datetime | None,
        identity: str | None,
        limit: int | None,
        alert_id: str | None = None,
    ) -> pd.DataFrame:
        """The alerts index is refreshed first: a save whose own refresh failed (an
        outage mid-step) has written alerts a search would not yet see, and a detector
        taking over must see them to keep their ids."""
        self.store.refresh({self.store.index("alerts")})
        where = query(EventFilter(since=since, until=until, identity=identity), ALERT_FIELDS)
        if alert_id is not None:  # an alert's document id is its id
            where = {"bool": {"filter": [where, {"ids": {"values": [alert_id]}}]}}
        sort = [{"@timestamp": "asc"}, {"id": "asc"}]
        docs = self.store.sources("alerts", where, sort, limit)
        return frame(self.with_folds(docs), ALERT_COLUMNS)

    def pending(self, sink: str, limit: int, now: datetime) -> list[PendingDelivery]:
        """Oldest alert first: the pages are sorted by creation."""
        found: list[PendingDelivery] = []
        moment = iso(now)
        for alert, record in self._rows(
            [sink], {"match_all": {}}, [{"created_at": "asc"}, {"id": "asc"}]
        ):
            if rules.wanted(
                record.get("state"),
                alert["revision"],
                record.get("delivered_revision", 0),
                record.get("next_attempt_at"),
                moment,
            ):
                found.append(_pending(alert, record))
                if len(found) >= limit:
                    break
        return found

    def state(
        self, sinks: Sequence[str], state: str | None, alert_id: str | None, limit: int | None
    ) -> pd.DataFrame:
        rules.check_state(state)
        where = {"term": {"id": alert_id}} if alert_id is not None else {"match_all": {}}
        rows: list[dict[str, Any]] = []
        picked: set[str] = set()
        for alert, record in self._rows(
            sorted(set(sinks)), where, [{"@timestamp": "desc"}, {"id": "asc"}]
        ):
            row = _delivery_row(alert, record)
            if state is not None and row["state"] != state:
                continue
            if limit is not None and row["alert_id"] not in picked and len(picked) >= limit:
                break
            picked.add(row["alert_id"])
            rows.append(row)
        return frame(rows, _DELIVERY_COLUMNS)

    def with_folds(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Alerts with their fold verdicts: `revision` grown by the alerts folded into
        each (`repeats`), `folded_into` and `fold_decided`."""
        ids = [a["id"] for a in alerts]
        if not ids:
            return []
        decided = {
            doc["_id"]: doc["_source"].get("into_id")
            for doc in self.store.mget(self.store.index("folds"), ids)
            if doc
        }
        repeats = self._repeats(ids)
        return [
            {
                **a,
                "revision": rules.revision(a["revision"], repeats.get(a["id"], 0)),
                "repeats": repeats.get(a["id"], 0),
                "folded_into": decided.get(a["id"]),
                "fold_decided": a["id"] in decided,
            }
            for a in alerts
        ]

    def _repeats(self, ids: list[str]) -> dict[str, int]:
        body = self.store.client.search(
            index=self.store.index("folds"),
            size=0,
            query={"terms": {"into_id": ids}},
            aggs={"into": {"terms": {"field": "into_id", "size": len(ids)}}},
            allow_no_indices=True,
            ignore_unavailable=True,
        ).body
        buckets = (body.get("aggregations") or {}).get("into", {}).get("buckets", [])
        return {b["key"]: b["doc_count"] for b in buckets}

    def _rows(
        self, sinks: Sequence[str], where: dict[str, Any], sort: list[dict[str, Any]]
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(alert with folds, its delivery record for a sink or {}) per alert and sink,
        in `sort` order, then by sink."""
        if not sinks:
            return
        for hits in self.store.pages(self.store.index("alerts"), where, sort):
            alerts = self.with_folds([h["_source"] for h in hits])
            keys = [(a["id"], sink) for a in alerts for sink in sinks]
            docs = self.store.mget(
                self.store.index("deliveries"), [delivery_id(*key) for key in keys]
            )
            records = {key: doc["_source"] for key, doc in zip(keys, docs, strict=True) if doc}
            for alert in alerts:
                for sink in sinks:
                    yield alert, records.get((alert["id"], sink), {"sink": sink})

    # -- writes --------------------------------------------------------------------------
    def record(self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime) -> None:
        rules.check_outcomes(outcomes)  # all checked first: a bad one stores nothing
        by_id: dict[str, list[DeliveryOutcome]] = {}
        for o in outcomes:
            by_id.setdefault(delivery_id(o.alert_id, sink), []).append(o)
        moment = iso(now)

        def change(doc_id: str, stored: dict[str, Any] | None) -> dict[str, Any]:
            record = stored
            for o in by_id[doc_id]:
                record = _recorded(record, sink, o, moment)
            assert record is not None  # noqa: S101 - by_id holds at least one outcome
            return record

        self.store.rewrite("deliveries", list(by_id), change)

    def resolve(
        self, alert_id: str, resolution: str | None, by: str, note: str | None, now: datetime
    ) -> None:
        rules.check_resolution(resolution)
        moment = iso(now)
        fields = dict(
            zip(
                ("resolution", "resolved_by", "resolved_at", "note"),
                rules.verdict(resolution, by, note, moment),
                strict=True,
            )
        )

        def change(_: str, stored: dict[str, Any] | None) -> dict[str, Any] | None:
            if stored is None:
                return None
            revision = rules.resolved_revision(stored["revision"])
            return {**stored, **fields, "revision": revision, "updated_at": moment}

        if not self.store.rewrite("alerts", [alert_id], change):
            raise StoreError(
                f"no alert {alert_id!r} in Elasticsearch store {self.store.prefix!r} at "
                f"{public(self.store.url)}; `secretwatch alerts` lists them"
            )

    def redrive(self, sink: str | None, alert_id: str | None) -> int:
        clauses: list[dict[str, Any]] = [{"term": {"state": rules.DEAD}}]
        if sink is not None:
            clauses.append({"term": {"sink": sink}})
        if alert_id is not None:
            clauses.append({"term": {"alert_id": alert_id}})
        ids = [
            h["_id"]
            for hits in self.store.pages(
                self.store.index("deliveries"),
                {"bool": {"filter": clauses}},
                [{"alert_id": "asc"}, {"sink": "asc"}],
                source=False,
            )
            for h in hits
        ]
        moment = now_iso()

        def change(_: str, stored: dict[str, Any] | None) -> dict[str, Any] | None:
            redriven = rules.redriven(stored["state"]) if stored is not None else None
            if stored is None or redriven is None:
                return None  # redriven by someone else meanwhile
            return {**stored, **redriven, "updated_at": moment}

        return self.store.rewrite("deliveries", ids, change) if ids else 0

    def fold(self, alert_id: str, into: str | None, now: datetime) -> str | None:
        rules.check_fold(alert_id, into)
        index = self.store.index("folds")
        self.store.ensure(index)
        try:
            self.store.client.create(
                index=index,
                id=alert_id,
                refresh=True,
                document={"alert_id": alert_id, "into_id": into, "decided_at": iso(now)},
            )
        except ConflictError:
            stored = self.store.get("folds", alert_id)
            return rules.fold_verdict((stored.get("into_id"),) if stored else None, into)
        return into


def _recorded(
    stored: Mapping[str, Any] | None, sink: str, o: DeliveryOutcome, moment: str
) -> dict[str, Any]:
    """A delivery record after one outcome (the rules: outbox_rules.py)."""
    old = stored or {}
    return {
        "alert_id": o.alert_id,
        "sink": sink,
        "delivered_revision": rules.settled(old.get("delivered_revision", 0), rules.offered(o)),
        "state": o.state,
        "attempts": o.attempts,
        "next_attempt_at": iso(o.next_attempt_at) if o.next_attempt_at else None,
        "last_status": o.status,
        "last_error": rules.clip_error(o.error),
        "first_failed_at": iso(o.first_failed_at) if o.first_failed_at else None,
        "delivered_at": rules.delivered_at(old.get("delivered_at"), o.state, moment),
        "updated_at": moment,
    }


def _delivery_row(alert: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "alert_id": alert["id"],
        "sink": record["sink"],
        "ts": alert["@timestamp"],
        "identity": alert["user.name"],
        "severity": alert["severity"],
        "detectors": alert["detectors"],
        "revision": alert["revision"],
        "delivered_revision": record.get("delivered_revision", 0),
        "state": rules.effective_state(
            record.get("state"), alert["revision"], record.get("delivered_revision", 0)
        ),
        "attempts": record.get("attempts", 0),
        "next_attempt_at": record.get("next_attempt_at"),
        "last_status": record.get("last_status"),
        "last_error": record.get("last_error"),
        "first_failed_at": record.get("first_failed_at"),
        "delivered_at": record.get("delivered_at"),
        "resolution": alert.get("resolution"),
        "repeats": alert["repeats"],
        "folded_into": alert["folded_into"],
    }


def _pending(alert: Mapping[str, Any], record: Mapping[str, Any]) -> PendingDelivery:
    return PendingDelivery(
        alert_id=alert["id"],
        revision=int(alert["revision"]),
        alert=orjson.loads(alert["body"]),
        resolution=alert.get("resolution"),
        resolved_by=alert.get("resolved_by"),
        resolved_at=to_datetime(alert.get("resolved_at")),
        note=alert.get("note"),
        repeats=int(alert["repeats"]),
        folded_into=alert["folded_into"],
        fold_decided=bool(alert["fold_decided"]),
        state=record.get("state"),
        attempts=int(record.get("attempts", 0)),
        first_failed_at=to_datetime(record.get("first_failed_at")),
        last_status=record.get("last_status"),
        delivered_revision=int(record.get("delivered_revision", 0)),
    )
