"""The store interface every backend implements (embedded DuckDB, Elasticsearch).

A store plays four roles, each a Protocol of its own: `EventLog` (events, dead letters,
checkpoints), `DetectionState` (baselines, detection state, alerts written by detection),
`Outbox` (alerts on their way to the sinks) and `ReportSource` (the aggregates reports
read). A caller takes the role it uses, so it can be handed anything that plays it (a test
double, a gate around a store); `Store` is all four plus the lifecycle, what `make_store`
returns. Backends are swapped by configuration without callers changing. Timestamps in and
out are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.record import EventRow

if TYPE_CHECKING:  # only in signatures: importing the interface loads neither pandas nor
    import pandas as pd  # every parser (pipeline.sources)

    from pipeline.sources.base import DeadLetter

GROUPABLE = ("source", "backend", "identity", "identity_kind", "secret", "action", "outcome")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read. `identity` and `secret` accept `*` wildcards."""

    since: datetime | None = None
    until: datetime | None = None
    identity: str | None = None
    secret: str | None = None
    action: str | None = None
    outcome: str | None = None
    source: str | None = None


ALL_EVENTS = EventFilter()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a followed file has been stored: resume here after a restart."""

    key: str
    path: str
    device: int
    inode: int
    offset: int
    line: int
    # "n:sha256" of the file's first n (<= 256) bytes: tells the same file from another one
    # that reuses its inode, or one rewritten in place while the follower was stopped.
    fingerprint: str | None = None


# -- the alert outbox ----------------------------------------------------------------------
DELIVERY_STATES = ("pending", "delivered", "dead", "suppressed")
RESOLUTIONS = ("true_positive", "false_positive")


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """One alert revision a sink has not taken yet, with that sink's delivery record.

    `revision` is the alert's delivery revision: it grows whenever the alert's body or
    resolution changes and whenever a repeat is folded into it, so a receiver that keeps the
    highest revision per alert id holds the latest word on every incident."""

    alert_id: str
    revision: int
    alert: Mapping[str, Any]  # the alert record as detectors wrote it (`body`)
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    note: str | None
    repeats: int  # alerts folded into this one (suppression window)
    folded_into: str | None  # the open alert this one was folded into
    fold_decided: bool  # whether the suppression step has judged this alert yet
    state: str | None  # this sink's record: None before the first attempt
    attempts: int  # attempts at the current revision (0 after success or redrive)
    first_failed_at: datetime | None
    last_status: int | None
    delivered_revision: int  # 0 = never delivered to this sink


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one attempt (or routing decision) did with one alert revision for one sink.

    `delivered` and `suppressed` settle `revision` (the sink wants nothing more until it
    grows); `pending` schedules another attempt at `next_attempt_at`; `dead` waits for
    `secretwatch alerts redrive`."""

    alert_id: str
    revision: int
    state: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    status: int | None = None  # the receiver's HTTP status, if it answered
    error: str | None = None  # redacted and bounded by the caller; the store clips it too
    first_failed_at: datetime | None = None


class EventLog(Protocol):
    """The stored events, with the dead letters and the follow checkpoints written with
    them."""

    def write_batch(
        self,
        rows: list[EventRow],
        dead: Sequence[DeadLetter] = (),
        checkpoints: Sequence[Checkpoint] = (),
    ) -> int:
        """Append events, dead letters and checkpoints atomically; return how many events
        were new. Idempotent on `event_id`: writing the same events again adds nothing."""

    def events(
        self,
        where: EventFilter = ALL_EVENTS,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> pd.DataFrame: ...

    def count(self, where: EventFilter = ALL_EVENTS) -> int: ...

    def stats(
        self, by: str, where: EventFilter = ALL_EVENTS, limit: int | None = None
    ) -> pd.DataFrame:
        """Event counts grouped by one of `GROUPABLE`, most frequent first."""

    def dead_letters(self, limit: int | None = None) -> pd.DataFrame: ...

    def checkpoint(self, key: str) -> Checkpoint | None: ...


class DetectionState(Protocol):
    """What detection learns and keeps between runs, saved with the alerts it raised."""

    def save_detection(
        self,
        baselines: Sequence[tuple[str, bytes]],
        state: Mapping[str, bytes],
        alerts: Sequence[Mapping[str, Any]],
        version: int,
        replace: bool = False,
    ) -> None:
        """Atomically store per-identity baseline documents, detection state (watermark,
        open incidents, model) and new or updated alerts (upserted by id)."""

    def baselines(self, identities: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
        """Stored baseline documents, all or those of `identities`."""

    def detection_state(self, key: str) -> bytes | None: ...


class Outbox(Protocol):
    """The alert outbox (its rules: pipeline/store/outbox_rules.py).

    The alerts table is the outbox: `save_detection` writes an alert in the same step that
    moves the watermark past its evidence, and bumps its `revision` when an upsert changes
    its body. Delivery keeps one record per (alert, sink); the work of a sink is every
    alert whose revision is above what that sink settled, except dead ones. `alerts()`
    frames carry `revision`, `resolution`, `resolved_by`, `resolved_at`, `note`,
    `repeats` and `folded_into` besides the columns detection writes (id, ts, identity,
    severity, detectors, score, window_start, window_end, explanation, evidence_count,
    baseline_version, body, created_at, updated_at). Times are tz-aware UTC."""

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

    def pending_deliveries(self, sink: str, limit: int, now: datetime) -> list[PendingDelivery]:
        """Up to `limit` alerts `sink` should take now, oldest alert first: revision above
        the sink's settled one, not dead, and no retry scheduled after `now`."""

    def record_delivery(
        self, sink: str, outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        """Upsert the delivery records of `sink` for these alerts in one step. `delivered`
        and `suppressed` set the settled revision (and `delivered_at` for delivered);
        `pending` and `dead` keep it. `error` is stored clipped to 2,000 characters."""

    def delivery_state(
        self,
        sinks: Sequence[str],
        state: str | None = None,
        alert_id: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """One row per (alert, sink in `sinks`), newest alert first (then sink name), with
        columns alert_id, sink, ts, identity, severity, detectors, revision,
        delivered_revision, state, attempts, next_attempt_at, last_status, last_error,
        first_failed_at, delivered_at, resolution, repeats, folded_into. `state` is the
        effective one: `dead` stays dead, a revision above the settled one is `pending`
        (also before any attempt), else the record's `delivered` or `suppressed`.
        `state` and `alert_id` filter; `limit` counts alerts, not rows."""

    def resolve_alert(
        self, alert_id: str, resolution: str | None, by: str, note: str | None, now: datetime
    ) -> None:
        """An analyst's verdict (`true_positive`, `false_positive`, or None to reopen); it
        bumps the revision so every sink receives the new status. A retrain learns the
        evidence of false positives as normal (`pipeline.detection.store.alert_evidence`) and keeps
        every other alert's out. Raises StoreError naming the id if no such alert exists."""

    def redrive(self, sink: str | None = None, alert_id: str | None = None) -> int:
        """Make dead deliveries (of one sink, one alert, or all) pending again with no
        attempts counted; return how many."""

    def decide_fold(self, alert_id: str, into: str | None, now: datetime) -> str | None:
        """Record the suppression step's verdict on an alert once: folded into the open
        alert `into` (whose revision and `repeats` then grow by one) or not folded (None).
        A verdict already stored wins; return the stored one."""


class ReportSource(Protocol):
    """What the quarterly access review reads: aggregates, never events one by one.

    A quarter can hold tens of millions of events, so each aggregate is one aggregation
    the store runs itself (SQL in DuckDB, aggregations in Elasticsearch). Shared rules:
    `since` is inclusive, `until` exclusive, both tz-aware; a missing `since` means from
    the first stored event. Timestamps come back as tz-aware UTC pandas timestamps
    (sub-second precision may differ per store: callers that need identical output
    across stores floor them to seconds). Counts are integers. One row per distinct key;
    row order is not part of the contract (callers sort). An empty range gives an empty
    frame with exactly these columns. Besides them, a report reads the period's alerts,
    the event count and the schema version (as `Outbox.alerts`, `EventLog.count` and
    `Store.schema_version`)."""

    def access_summary(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        """Events in [since, until) grouped by (source, backend, identity, identity_kind,
        secret, action, operation, outcome), with `events` (count), `first_ts` and
        `last_ts` (earliest and latest event of the group).

        `secret` is missing (None or NaN) for events without one (logins, housekeeping);
        those events form their own groups, so the counts add up to every event."""

    def hourly_activity(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        """Events in [since, until) per identity and clock hour: columns `identity`,
        `hour` (the UTC start of the hour), `events` and `denied` (those whose outcome
        is `denied`). Hours without events have no row."""

    def source_coverage(self, since: datetime | None, until: datetime) -> pd.DataFrame:
        """Events in [since, until) per source, backend and UTC day: columns `source`,
        `backend`, `day` (UTC midnight), `events`, `first_ts`, `last_ts`. Days without
        events have no row, which is how a missing log shows."""

    def secret_history(self, until: datetime) -> pd.DataFrame:
        """Every event before `until` that names a secret, over the whole stored history,
        grouped by (source, backend, secret, action, operation, outcome), with `events`,
        `first_ts` and `last_ts`: when each secret was last read, written or rotated, and
        since when it has been known, however long ago that was."""

    def alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        identity: str | None = None,
        limit: int | None = None,
        alert_id: str | None = None,
    ) -> pd.DataFrame: ...

    def count(self, where: EventFilter = ALL_EVENTS) -> int: ...

    def schema_version(self) -> int: ...


class Store(EventLog, DetectionState, Outbox, ReportSource, Protocol):
    """A whole store: every role, and its lifecycle."""

    def open(self) -> None:
        """Connect (and create or migrate the schema when writable)."""

    def close(self) -> None: ...

    def schema_version(self) -> int: ...
