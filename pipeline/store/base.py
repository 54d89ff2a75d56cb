"""The store interface every backend implements (embedded DuckDB now, Elasticsearch later).

Callers (ingest, CLI, detectors, reports) only use this Protocol, so a backend can be swapped
by configuration without them changing. Timestamps in and out are UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from pipeline.record import EventRow
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


class Store(Protocol):
    def open(self) -> None:
        """Connect (and create or migrate the schema when writable)."""

    def close(self) -> None: ...

    def schema_version(self) -> int: ...

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

    def alerts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        identity: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame: ...
