"""`ElasticsearchStore` on a `Cluster`: connection, schema, order of writes, refreshes before
reads; each role's work is beside it (events, detection, outbox, reports, archive,
lifecycle.py). Some 440 lines on purpose: it is the one class through which every role's
method is reached, the archive's (`ArchiveSource`) included."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import pyarrow as pa
from elasticsearch import AuthorizationException

from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store.base import (
    ALL_EVENTS,
    Checkpoint,
    DeliveryOutcome,
    EventFilter,
    PendingDelivery,
)
from pipeline.store.elasticsearch import archive, detection, events, lifecycle, reports
from pipeline.store.elasticsearch.cluster import Cluster
from pipeline.store.elasticsearch.credentials import credentials
from pipeline.store.elasticsearch.outbox import Outbox
from pipeline.store.elasticsearch.schema import (
    EVENT_FIELDS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    mapping,
    public,
)
from pipeline.store.rows import dedupe

if TYPE_CHECKING:
    from pipeline.config import ElasticsearchStoreConfig

_T = TypeVar("_T")
REFRESH_SECONDS = 1.0  # under load, written events become searchable this often
REFRESH_BATCH = 1000  # a batch smaller than this is searchable at once


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
        retention: lifecycle.Lifecycle = lifecycle.DEFAULT,
    ) -> None:
        """`clock` gives seconds (any origin) for the at-most-once-a-second refresh;
        `retention` is what the event indices' lifecycle policy enforces."""
        self.read_only = read_only
        self.retention = retention
        self._day_ids: dict[tuple[date, str], list[str]] = {}  # day_events -> drop_day
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
        retention: lifecycle.Lifecycle = lifecycle.DEFAULT,
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
            retention=retention,
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
            if not self.read_only:
                with self.cluster.explained("installing the events lifecycle policy"):
                    lifecycle.install(self.cluster, self.retention)
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
        if current and not self.read_only:
            # Fields are only ever added: each existing month takes the new ones.
            self.cluster.client.indices.put_mapping(
                index=f"{self.prefix}-events-*",
                properties=mapping(EVENT_TYPES, fields=EVENT_FIELDS)["properties"],
                allow_no_indices=True,
            )
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
        inserted = events.write_events(self.cluster, dedupe(rows), touched) if rows else 0
        if dead:
            events.write_dead(self.cluster, dead)
            touched.add(self.index("dead-letters"))
        self._refresh_soon(touched, small=len(rows) < REFRESH_BATCH)
        if checkpoints:
            events.write_checkpoints(self.cluster, checkpoints)
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

    @_guard("saving detection state")
    def save_detection(
        self,
        baselines: Sequence[tuple[str, bytes]],
        state: Mapping[str, bytes],
        alerts: Sequence[Mapping[str, Any]],
        version: int,
        replace: bool = False,
    ) -> None:
        """Alerts, then baselines, then detection state with the watermark last, each step
        only once the one before it is complete (see `detection.save`)."""
        self.writable()
        detection.save(self.cluster, baselines, state, alerts, version, replace)

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
        return events.events(self.cluster, where, limit, newest_first)

    @_guard("counting events")
    def count(self, where: EventFilter = ALL_EVENTS) -> int:
        self._visible()
        return events.count(self.cluster, where)

    @_guard("computing event statistics")
    def stats(
        self, by: str, where: EventFilter = ALL_EVENTS, limit: int | None = None
    ) -> pd.DataFrame:
        self._visible()
        return events.stats(self.cluster, by, where, limit)

    @_guard("reading dead letters")
    def dead_letters(self, limit: int | None = None) -> pd.DataFrame:
        self._visible()
        return events.dead_letters(self.cluster, limit)

    @_guard("reading a checkpoint")
    def checkpoint(self, key: str) -> Checkpoint | None:
        return events.checkpoint(self.cluster, key)

    @_guard("reading baselines")
    def baselines(self, identities: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
        return detection.baselines(self.cluster, identities)

    @_guard("reading detection state")
    def detection_state(self, key: str) -> bytes | None:
        return detection.detection_state(self.cluster, key)

    @_guard("reading alerts")
    def alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        identity: str | None = None,
        limit: int | None = None,
        alert_id: str | None = None,
    ) -> pd.DataFrame:
        """Stored alerts, oldest first; `body` holds the full alert as JSON. `identity`
        accepts `*` wildcards, as for events; `alert_id` reads that one alert only."""
        return self._outbox.alerts(since, until, identity, limit, alert_id)

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

    # -- the archive (contract: ArchiveSource in pipeline/archive/source.py) --------------
    @_guard("listing archivable days")
    def archivable_days(self, before: datetime) -> list[tuple[date, str, int]]:
        self._visible()
        return archive.archivable_days(self.cluster, before)

    @_guard("reading a day's events")
    def day_events(self, day: date, source: str) -> pa.Table:
        """Also keeps the ids read until that day is dropped: `drop_day` deletes those."""
        self._visible()
        table = archive.day_events(self.cluster, day, source)
        self._day_ids[(day, source)] = table.column("event_id").to_pylist()
        return table

    @_guard("dropping an archived day")
    def drop_day(self, day: date, source: str, expected: int) -> int:
        self.writable()
        read = self._day_ids.pop((day, source), None)
        return archive.drop_day(self.cluster, day, source, expected, read)

    @_guard("expiring month indices")
    def expire(self, now: datetime) -> list[str]:
        """Delete month indices past retention where ILM does not (see lifecycle.py)."""
        self.writable()
        return lifecycle.expire(self.cluster, self.retention, now)
