"""`ElasticsearchStore`: events, dead letters, checkpoints, detection state and alerts, on
a `Cluster` (cluster.py); the outbox and the report aggregations live beside it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial, wraps
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from elasticsearch import AuthorizationException

from pipeline.errors import StoreError
from pipeline.record import PROVISIONAL_NOTE, EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store import outbox_rules as rules
from pipeline.store.base import (
    ALL_EVENTS,
    GROUPABLE,
    Checkpoint,
    DeliveryOutcome,
    EventFilter,
    PendingDelivery,
)
from pipeline.store.elasticsearch import reports
from pipeline.store.elasticsearch.cluster import Action, Cluster, credentials
from pipeline.store.elasticsearch.outbox import ALERT_COLUMNS, Outbox
from pipeline.store.elasticsearch.schema import (
    ALERT_FIELDS,
    EVENT_FIELDS,
    EVENT_SCHEMA,
    EVENT_TYPES,
    PAGE,
    SCHEMA_VERSION,
    action,
    blob,
    dead_id,
    event_batch,
    event_doc,
    frame,
    from_epoch,
    iso,
    like_duckdb,
    mapping,
    month,
    now_iso,
    public,
    query,
    unblob,
)
from pipeline.store.rows import dedupe

if TYPE_CHECKING:
    from pipeline.config import ElasticsearchStoreConfig

_T = TypeVar("_T")
_HOUR_US = 3_600_000_000
REFRESH_SECONDS = 1.0  # under load, written events become searchable this often
REFRESH_BATCH = 1000  # a batch smaller than this is searchable at once
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


def _guard(doing: str) -> Callable[[Callable[..., _T]], Callable[..., _T]]:
    """Turn client errors inside a store method into a StoreError that names the fix."""

    def wrap(method: Callable[..., _T]) -> Callable[..., _T]:
        @wraps(method)
        def guarded(self: ElasticsearchStore, *args: Any, **kwargs: Any) -> _T:
            with self.cluster.explained(doing):
                return method(self, *args, **kwargs)

        return guarded

    return wrap


class ElasticsearchStore:
    """A store on an Elasticsearch cluster, shared by as many processes as needed.

    Indices (`p` the prefix): `p-events-YYYY.MM` by each event's month, from the `p-events`
    template; `p-{kind}` for each of `schema.KINDS`, created when first written. Mappings
    are explicit and strict. Elasticsearch has no transactions, so writes are ordered to
    make a crash part-way harmless: see `write_batch` and `save_detection`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:9200",
        index_prefix: str = "secretwatch",
        read_only: bool = False,
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        request_timeout: float = 30.0,
        max_retries: int = 3,
        bulk_size: int = 5000,
        bulk_threads: int = 4,
        read_slices: int = 2,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` gives seconds (any origin) for the at-most-once-a-second refresh."""
        self.read_only = read_only
        options: dict[str, Any] = {
            "request_timeout": request_timeout,
            "max_retries": max_retries,
            "retry_on_status": (429, 502, 503, 504),
            "retry_on_timeout": True,
            "verify_certs": verify_certs,
        }
        if ca_certs:
            options["ca_certs"] = ca_certs
        if api_key:
            options["api_key"] = api_key
        elif username:
            options["basic_auth"] = (username, password or "")
        self._unrefreshed: set[str] = set()  # written since the last refresh
        self._refreshed_at: float | None = None  # never: the first batch refreshes
        self._clock = clock
        self.cluster = Cluster(
            url,
            index_prefix,
            options,
            bulk_size=bulk_size,
            bulk_threads=bulk_threads,
            read_slices=read_slices,
            max_retries=max_retries,
            backoff=backoff,
        )
        self.url, self.prefix = self.cluster.url, self.cluster.prefix
        self._outbox = Outbox(self.cluster)

    @classmethod
    def from_config(
        cls,
        cfg: ElasticsearchStoreConfig,
        read_only: bool = False,
        environ: Mapping[str, str] = os.environ,
    ) -> ElasticsearchStore:
        """The store a config section describes; secrets are read from the environment
        variables it names, never from the file."""
        return cls(
            cfg.url,
            cfg.index_prefix,
            read_only,
            **credentials(cfg, environ),
            ca_certs=str(cfg.ca_certs) if cfg.ca_certs else None,
            verify_certs=cfg.verify_certs,
            request_timeout=cfg.request_timeout,
            max_retries=cfg.max_retries,
            bulk_size=cfg.bulk_size,
        )

    def __repr__(self) -> str:
        options = self.cluster.options
        if "api_key" in options:
            auth = "api key"
        elif "basic_auth" in options:
            auth = f"user {options['basic_auth'][0]!r}"
        else:
            auth = "no auth"
        mode = "read-only" if self.read_only else "writable"
        return f"ElasticsearchStore({public(self.url)}, prefix {self.prefix!r}, {auth}, {mode})"

    def index(self, kind: str) -> str:
        """The index of `kind` (one of `schema.KINDS`), or for "events" the pattern over
        the monthly indices."""
        return self.cluster.index(kind)

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        self.cluster.connect()
        try:
            with self.cluster.explained("connecting"):
                self._check_schema()  # its first request tells refused connections and auth
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.cluster.close()

    def __enter__(self) -> ElasticsearchStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_guard("reading the schema version")
    def schema_version(self) -> int:
        doc = self.cluster.get("meta", "schema_version")
        return int(doc["value"]) if doc else 0

    def _check_schema(self) -> None:
        current = self.schema_version()
        where = f"Elasticsearch store {self.prefix!r} at {public(self.url)}"
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{where} has schema version {current}, newer than this secretwatch "
                f"understands ({SCHEMA_VERSION}); upgrade secretwatch"
            )
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            if current == 0:
                raise StoreError(
                    f"{where} does not exist yet (no {self.index('meta')} index); run "
                    "`secretwatch ingest PATH` first or point `store.index_prefix` at an "
                    "existing store"
                )
            raise StoreError(f"{where} has schema version {current}; open it once writable")
        self._create_schema()

    def _create_schema(self) -> None:
        """The events template, then the version: a store with a version is whole. The
        other indices are created when first written, from `schema.KINDS`."""
        self.cluster.client.indices.put_index_template(
            name=f"{self.prefix}-events",
            index_patterns=[f"{self.prefix}-events-*"],
            priority=500,  # above the built-in templates, whatever they match
            template={
                # Every write_batch refreshes what it wrote, so the periodic refresh is
                # only a fallback; at 1 s it cuts bulk loads into tiny segments (half
                # the write rate, measured).
                "settings": {"number_of_shards": 1, "refresh_interval": "30s"},
                "mappings": mapping(EVENT_TYPES, fields=EVENT_FIELDS),
            },
            meta={"managed_by": "secretwatch", "schema_version": SCHEMA_VERSION},
        )
        self.cluster.ensure(self.index("meta"))
        self.cluster.client.index(
            index=self.index("meta"),
            id="schema_version",
            document={"value": str(SCHEMA_VERSION)},
            refresh=True,
        )

    def writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"Elasticsearch store {self.prefix!r} at {public(self.url)} is open read-only; "
                "writes are refused"
            )
        self.cluster.client  # noqa: B018 - raises when not open

    # -- writes --------------------------------------------------------------------------
    @_guard("writing a batch")
    def write_batch(
        self,
        rows: list[EventRow],
        dead: Sequence[DeadLetter] = (),
        checkpoints: Sequence[Checkpoint] = (),
    ) -> int:
        """Events, then dead letters, then checkpoints (not atomic: a crash before the
        checkpoint replays the batch, and replaying adds nothing). Returns how many events
        were new, counting a complete record that replaced a provisional one."""
        self.writable()
        touched: set[str] = set()
        inserted = self._write_events(dedupe(rows), touched) if rows else 0
        if dead:
            self._write_dead(dead)
            touched.add(self.index("dead-letters"))
        self._refresh_soon(touched, small=len(rows) < REFRESH_BATCH)
        if checkpoints:
            self.cluster.ensure(self.index("checkpoints"))
            now = now_iso()
            self.cluster.bulk_checked(
                [
                    action(
                        "index",
                        self.index("checkpoints"),
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
        return inserted

    def _refresh_soon(self, indices: set[str], small: bool) -> None:
        """Make written events searchable for other readers (Kibana, another member): at
        once after a small batch (a quiet stream, where delay matters), at most once a
        second under load, where a refresh per batch costs a tenth of the write rate.
        This store's own reads refresh first (`_visible`), so they never miss a write."""
        self._unrefreshed |= indices
        now = self._clock()
        if small or self._refreshed_at is None or now - self._refreshed_at >= REFRESH_SECONDS:
            self.cluster.refresh(self._unrefreshed)
            self._unrefreshed, self._refreshed_at = set(), now

    def _visible(self) -> None:
        """Refresh the event and dead-letter indices before a search: a write of any
        process (a member killed before the once-a-second refresh) is then seen. A
        reader whose credentials may not refresh reads what the scheduled one shows."""
        try:
            self.cluster.refresh({self.index("events"), self.index("dead-letters")})
        except AuthorizationException:
            return
        self._unrefreshed = set()

    def _write_events(self, rows: list[EventRow], touched: set[str]) -> int:
        stamps = np.array([r[1] for r in rows], dtype="datetime64[us]")
        iso_stamps = np.datetime_as_string(stamps, unit="us").tolist()
        months = stamps.astype("datetime64[M]")
        names = [f"{self.prefix}-events-{month(m)}" for m in months]
        for name in set(names):
            self.cluster.ensure(name)
        touched.update(names)
        known = self._across_months(rows, stamps, months, touched)
        actions = [
            action("create", index, row[0], event_doc(row, stamp))
            for row, index, stamp in zip(rows, names, iso_stamps, strict=True)
            if row[0] not in known
        ]
        items = self.cluster.bulk_checked(actions, accept=(409,))
        conflicts = {i["_id"] for i in items if i["status"] == 409}
        complete = [
            (row, index, stamp)
            for row, index, stamp in zip(rows, names, iso_stamps, strict=True)
            if row[0] in conflicts and row.note != PROVISIONAL_NOTE
        ]
        return sum(1 for i in items if i["status"] == 201) + self._upgrade(complete)

    def _across_months(
        self, rows: list[EventRow], stamps: np.ndarray, months: np.ndarray, touched: set[str]
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
                index = f"{self.prefix}-events-{month(months[i] + step)}"
                near.setdefault(index, []).append(rows[i])
        known: set[str] = set()
        deletes: list[Action] = []
        for index, group in near.items():
            stored = self.cluster.mget(index, [r[0] for r in group])
            for row, doc in zip(group, stored, strict=True):
                if doc is None:
                    continue
                if doc["_source"].get(EVENT_FIELDS["note"]) == PROVISIONAL_NOTE != row.note:
                    deletes.append(action("delete", index, row[0]))
                    touched.add(index)
                else:
                    known.add(row[0])
        if deletes:
            self.cluster.bulk_checked(deletes, accept=(404,))
        return known

    def _upgrade(self, complete: list[tuple[EventRow, str, str]]) -> int:
        """Overwrite the stored provisional events these complete ones (row, index, time)
        conflicted with; return how many."""
        replace: list[Action] = []
        for start in range(0, len(complete), PAGE):
            part = {
                row[0]: (row, index, stamp) for row, index, stamp in complete[start : start + PAGE]
            }
            hits = (
                self.cluster.client.search(
                    index=self.index("events"),
                    query={
                        "bool": {
                            "filter": [
                                {"ids": {"values": list(part)}},
                                {"term": {EVENT_FIELDS["note"]: PROVISIONAL_NOTE}},
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
            self.cluster.bulk_checked(replace)
        return len(replace)

    def _write_dead(self, dead: Sequence[DeadLetter]) -> None:
        """Create-only with a content-derived id: the same letter twice is stored once."""
        index, now = self.index("dead-letters"), now_iso()
        self.cluster.ensure(index)
        self.cluster.bulk_checked(
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

    @_guard("saving detection state")
    def save_detection(
        self,
        baselines: Sequence[tuple[str, bytes]],
        state: Mapping[str, bytes],
        alerts: Sequence[Mapping[str, Any]],
        version: int,
        replace: bool = False,
    ) -> None:
        """Store alerts, baselines and detection state, in that order, each step only once
        the one before it is complete, since Elasticsearch has no transactions:
        1. every document is built first, so a malformed alert stores nothing at all;
        2. alerts, upserted by id: raised again after a crash, they change nothing;
        3. baselines, then (`replace`) the deletion of all older ones;
        4. detection state, the `meta` key (the watermark) last.
        A crash before step 4 leaves the old watermark: the restarted detector judges that
        stretch again (same alert ids, so no duplicates) and may learn it a second time."""
        self.writable()
        now, generation = now_iso(), uuid.uuid4().hex
        docs = {doc["id"]: doc for doc in (_alert_doc(a, now) for a in alerts)}
        baseline_actions = [
            action(
                "index",
                self.index("baselines"),
                identity,
                {
                    "identity": identity,
                    "version": version,
                    "generation": generation,
                    "body": blob(body),
                    "updated_at": now,
                },
            )
            for identity, body in baselines
        ]
        state_actions = {
            key: action(
                "index",
                self.index("detection-state"),
                key,
                {"key": key, "value": blob(value), "updated_at": now},
            )
            for key, value in state.items()
        }
        if docs:
            self.cluster.rewrite(
                "alerts", list(docs), lambda i, old: _upsert_alert(docs[i], old, now)
            )
        if baseline_actions or replace:
            self.cluster.ensure(self.index("baselines"))
            self.cluster.bulk_checked(baseline_actions)
            if replace:
                self._drop_baselines_but(generation)
            self.cluster.refresh({self.index("baselines")})
        if state_actions:
            self.cluster.ensure(self.index("detection-state"))
            rest = [a for key, a in state_actions.items() if key != "meta"]
            self.cluster.bulk_checked(rest)
            if "meta" in state_actions:
                self.cluster.bulk_checked([state_actions["meta"]])

    def _drop_baselines_but(self, generation: str) -> None:
        """Delete the baselines other calls wrote (search + bulk delete, not
        delete_by_query, which lives in a module minimal distributions lack)."""
        index = self.index("baselines")
        self.cluster.refresh({index})
        where = {"bool": {"must_not": {"term": {"generation": generation}}}}
        for hits in self.cluster.pages(index, where, [{"identity": "asc"}], source=False):
            deletes = [action("delete", index, h["_id"]) for h in hits]
            self.cluster.bulk_checked(deletes, accept=(404,))

    # -- the outbox (contracts in store/base.py; the work is in outbox.py) ------------------
    @_guard("reading pending deliveries")
    def pending_deliveries(self, sink: str, limit: int, now: datetime) -> list[PendingDelivery]:
        return self._outbox.pending(sink, limit, now)

    @_guard("recording deliveries")
    def record_delivery(
        self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        self.writable()
        self._outbox.record(sink, outcomes, now)

    @_guard("reading delivery state")
    def delivery_state(
        self,
        sinks: Sequence[str],
        state: str | None = None,
        alert_id: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        return self._outbox.state(sinks, state, alert_id, limit)

    @_guard("resolving an alert")
    def resolve_alert(
        self, alert_id: str, resolution: str | None, by: str, note: str | None, now: datetime
    ) -> None:
        self.writable()
        self._outbox.resolve(alert_id, resolution, by, note, now)

    @_guard("re-driving dead deliveries")
    def redrive(self, sink: str | None = None, alert_id: str | None = None) -> int:
        self.writable()
        return self._outbox.redrive(sink, alert_id)

    @_guard("recording a suppression verdict")
    def decide_fold(self, alert_id: str, into: str | None, now: datetime) -> str | None:
        self.writable()
        return self._outbox.fold(alert_id, into, now)

    # -- reads ---------------------------------------------------------------------------
    @_guard("reading events")
    def events(
        self,
        where: EventFilter = ALL_EVENTS,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> pd.DataFrame:
        self._visible()
        order = "desc" if newest_first else "asc"
        index, sort = self.index("events"), [{"@timestamp": order}, {"event.id": "asc"}]
        if limit is not None:  # the first rows in order: one stream
            pages = self.cluster.pages(index, query(where, EVENT_FIELDS), sort, limit)
            table = pa.Table.from_batches(map(event_batch, pages), EVENT_SCHEMA)
            return like_duckdb(table.to_pandas())
        # All rows (training reads hundreds of thousands): slices of a point in time read
        # in parallel in index order, which spares the server a sort per page (half its
        # work), then sorted here.
        batches = self.cluster.sliced(
            index,
            query(where, EVENT_FIELDS),
            [{"_shard_doc": "asc"}],
            self.cluster.read_slices,
            partial(event_batch, sorted_by_time=False),
        )
        table = pa.Table.from_batches(batches, EVENT_SCHEMA)
        arrow_order = "descending" if newest_first else "ascending"
        table = table.sort_by([("ts", arrow_order), ("event_id", "ascending")])
        return like_duckdb(table.to_pandas())

    @_guard("counting events")
    def count(self, where: EventFilter = ALL_EVENTS) -> int:
        self._visible()
        return int(
            self.cluster.client.count(
                index=self.index("events"),
                query=query(where, EVENT_FIELDS),
                allow_no_indices=True,
                ignore_unavailable=True,
            )["count"]
        )

    @_guard("computing event statistics")
    def stats(
        self, by: str, where: EventFilter = ALL_EVENTS, limit: int | None = None
    ) -> pd.DataFrame:
        """A composite aggregation paged to the end (exact counts, unlike `terms`), then
        ordered like DuckDB: most events first, ties by name, no value last. First and
        last times come from sorted top hits, exact to the µs (min/max give ms)."""
        self._visible()
        if by not in GROUPABLE:
            raise StoreError(f"cannot group by {by!r}; choose one of {', '.join(GROUPABLE)}")
        rows = list(
            reports.composite(
                self.cluster,
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

    @_guard("reading dead letters")
    def dead_letters(self, limit: int | None = None) -> pd.DataFrame:
        self._visible()
        sort = [{"recorded_at": "asc"}, {"file": "asc"}, {"offset": "asc"}]
        return frame(
            self.cluster.sources("dead-letters", {"match_all": {}}, sort, limit), _DEAD_COLUMNS
        )

    @_guard("reading a checkpoint")
    def checkpoint(self, key: str) -> Checkpoint | None:
        doc = self.cluster.get("checkpoints", key)
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

    @_guard("reading baselines")
    def baselines(self, identities: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
        if identities is not None:
            docs = self.cluster.mget(self.index("baselines"), list(dict.fromkeys(identities)))
            return sorted((d["_id"], unblob(d["_source"]["body"]) or b"") for d in docs if d)
        return [
            (h["_source"]["identity"], unblob(h["_source"]["body"]) or b"")
            for hits in self.cluster.pages(
                self.index("baselines"),
                {"match_all": {}},
                [{"identity": "asc"}],
                source=["identity", "body"],
            )
            for h in hits
        ]

    @_guard("reading detection state")
    def detection_state(self, key: str) -> bytes | None:
        doc = self.cluster.get("detection-state", key)
        return unblob(doc["value"]) if doc else None

    @_guard("reading alerts")
    def alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        identity: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Stored alerts, oldest first; `body` holds the full alert as JSON. `identity`
        accepts `*` wildcards, as for events. The alerts index is refreshed first: a
        save whose own refresh failed (an outage mid-step) has written alerts a search
        would not yet see, and a detector taking over must see them to keep their ids."""
        self.cluster.refresh({self.index("alerts")})
        where = query(EventFilter(since=since, until=until, identity=identity), ALERT_FIELDS)
        docs = self.cluster.sources("alerts", where, [{"@timestamp": "asc"}, {"id": "asc"}], limit)
        return frame(self._outbox.with_folds(docs), ALERT_COLUMNS)

    # -- report aggregates (contracts in store/base.py; the work is in reports.py) ---------
    @_guard("summarizing access")
    def access_summary(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        self._visible()
        return reports.access_summary(self.cluster, since, until)

    @_guard("counting hourly activity")
    def hourly_activity(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        self._visible()
        return reports.hourly_activity(self.cluster, since, until)

    @_guard("measuring source coverage")
    def source_coverage(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        self._visible()
        return reports.source_coverage(self.cluster, since, until)

    @_guard("reading secret history")
    def secret_history(self, until: datetime) -> pd.DataFrame:
        self._visible()
        return reports.secret_history(self.cluster, until)


def _top_time(order: str) -> dict[str, Any]:
    return {"top_hits": {"size": 1, "sort": [{"@timestamp": order}], "_source": False}}


def _top(agg: Mapping[str, Any]) -> int:
    return int(agg["hits"]["hits"][0]["sort"][0])


def _alert_doc(alert: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The detection fields of an alert document; malformed alerts raise StoreError."""
    try:
        return {
            "id": str(alert["id"]),
            "@timestamp": iso(alert["timestamp"]),
            "user.name": str(alert["identity"]),
            "severity": str(alert["severity"]),
            "detectors": ",".join(alert["detectors"]),
            "score": float(alert["score"]),
            "window_start": iso(alert["window_start"]),
            "window_end": iso(alert["window_end"]),
            "explanation": str(alert["explanation"]),
            "evidence_count": int(alert["evidence_count"]),
            "baseline_version": int(alert["baseline_version"]),
            "body": orjson.dumps(alert, default=str).decode(),
            "updated_at": now,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(
            f"alert {alert.get('id')!r} cannot be stored: {exc!r}; nothing was saved"
        ) from exc


def _upsert_alert(doc: dict[str, Any], stored: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """A new alert whole; a known one keeps its creation time and analyst verdict, and
    its revision grows only if its body changed."""
    if stored is None:
        return {**doc, "created_at": now, "revision": rules.FIRST_REVISION}
    revision = rules.upserted_revision(stored["revision"], stored["body"], doc["body"])
    return {**stored, **doc, "revision": revision}
