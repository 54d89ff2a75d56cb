"""`DuckDBStore`: one DuckDB file, written in Arrow batches, no server. The class holds the
connection and its lifecycle and runs each write in one transaction; the work of each role
is in events.py, detection.py, outbox.py and reports.py, as functions of the connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store import outbox_rules as rules
from pipeline.store.base import (
    ALL_EVENTS,
    Checkpoint,
    DeliveryOutcome,
    EventFilter,
    PendingDelivery,
)
from pipeline.store.duckdb import detection, events, outbox, reports, schema
from pipeline.store.duckdb.connection import connect, disconnect, retried, transaction


class DuckDBStore:
    """The embedded default store."""

    def __init__(
        self, path: str | Path, read_only: bool = False, archive: Path | None = None
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.archive = archive  # the archive folder: event reads cover archived days too
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        self._con = connect(self.path, self.read_only)
        try:
            schema.migrate(self._con, self.path, self.read_only)
        except BaseException:
            self.close()  # a refused store must not stay open (and locked) in this process
            raise

    def close(self) -> None:
        if self._con is not None:
            con, self._con = self._con, None
            disconnect(con)

    def __enter__(self) -> DuckDBStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError("store is not open; call open() first")
        return self._con

    def schema_version(self) -> int:
        return schema.schema_version(self.con)

    def _transaction(self, doing: str) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return transaction(self.con, f"{doing} in store {self.path}")

    # -- the event log -------------------------------------------------------------------
    def write_batch(
        self,
        rows: list[EventRow],
        dead: Sequence[DeadLetter] = (),
        checkpoints: Sequence[Checkpoint] = (),
    ) -> int:
        with transaction(self.con, f"writing to store {self.path}") as con:
            return events.write_batch(con, rows, dead, checkpoints)

    def events(
        self,
        where: EventFilter = ALL_EVENTS,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> pd.DataFrame:
        return events.events(self.con, where, limit, newest_first, self.archive)

    def count(self, where: EventFilter = ALL_EVENTS) -> int:
        return events.count(self.con, where, self.archive)

    def stats(
        self, by: str, where: EventFilter = ALL_EVENTS, limit: int | None = None
    ) -> pd.DataFrame:
        return events.stats(self.con, by, where, limit, self.archive)

    def dead_letters(self, limit: int | None = None) -> pd.DataFrame:
        return events.dead_letters(self.con, limit)

    def checkpoint(self, key: str) -> Checkpoint | None:
        return events.checkpoint(self.con, key)

    # -- detection state -----------------------------------------------------------------
    def save_detection(
        self,
        baselines: Sequence[tuple[str, bytes]],
        state: Mapping[str, bytes],
        alerts: Sequence[Mapping[str, Any]],
        version: int,
        replace: bool = False,
    ) -> None:
        """Store baselines, detection state and new or grown alerts in one transaction, so
        a restart resumes exactly where the stored watermark says, with the alerts of
        everything before it. `replace` drops all previous baselines first (a retrain)."""
        retried(
            self.con,
            f"writing detection state to store {self.path}",
            lambda con: detection.save(con, baselines, state, alerts, version, replace),
        )

    def baselines(self, identities: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
        return detection.baselines(self.con, identities)

    def detection_state(self, key: str) -> bytes | None:
        return detection.detection_state(self.con, key)

    # -- the alert outbox ----------------------------------------------------------------
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
        return outbox.alerts(self.con, since, until, identity, limit, alert_id)

    def pending_deliveries(self, sink: str, limit: int, now: datetime) -> list[PendingDelivery]:
        return outbox.pending(self.con, sink, limit, now)

    def record_delivery(
        self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        if not outcomes:
            return
        rules.check_outcomes(outcomes)
        retried(
            self.con,
            f"recording deliveries in store {self.path}",
            lambda con: outbox.record_delivery(con, sink, outcomes, now),
        )

    def delivery_state(
        self,
        sinks: Sequence[str],
        state: str | None = None,
        alert_id: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        return outbox.delivery_state(self.con, sinks, state, alert_id, limit)

    def resolve_alert(
        self, alert_id: str, resolution: str | None, by: str, note: str | None, now: datetime
    ) -> None:
        rules.check_resolution(resolution)
        found = retried(
            self.con,
            f"resolving an alert in store {self.path}",
            lambda con: outbox.resolve_alert(con, alert_id, resolution, by, note, now),
        )
        if not found:
            raise StoreError(
                f"no alert {alert_id!r} in store {self.path}; `secretwatch alerts` lists them"
            )

    def redrive(self, sink: str | None = None, alert_id: str | None = None) -> int:
        return retried(
            self.con,
            f"re-driving dead deliveries in store {self.path}",
            lambda con: outbox.redrive(con, sink, alert_id),
        )

    def decide_fold(self, alert_id: str, into: str | None, now: datetime) -> str | None:
        rules.check_fold(alert_id, into)
        with self._transaction("recording a suppression verdict") as con:
            return outbox.decide_fold(con, alert_id, into, now)

    # -- report aggregates ---------------------------------------------------------------
    def access_summary(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return reports.access_summary(self.con, since, until, self.archive)

    def hourly_activity(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return reports.hourly_activity(self.con, since, until, self.archive)

    def source_coverage(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        return reports.source_coverage(self.con, since, until, self.archive)

    def secret_history(self, until: datetime) -> pd.DataFrame:
        return reports.secret_history(self.con, until, self.archive)
