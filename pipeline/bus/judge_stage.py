"""The judge stage of `secretwatch run` (shown as `detect` in its logs and summary): the
events topic -> store, baselines, alerts.

Events are keyed by identity, so the member that owns a partition owns the baselines of its
identities. Each polled batch is stored and judged by the embedded detection runtime
(`pipeline.detection.embedded`: alerts into the store's outbox) and only then are its
offsets committed.

Rebalances: on revocation the member snapshots the baselines of what it owned (Kafka calls
every member's revocation before any assignment, so the next owner loads fresh state); on
assignment it loads the baselines of the identities on its partitions and judges again what
the previous owner stored but had not learned from. The loading happens after `poll`
returns rather than inside the callback, so a slow store cannot stall the group protocol.

Time: the clock passed to detection (less `lateness_seconds`) is the lower of two bounds:
the slowest raw partition's progress mark, as the normalize members report them on every
events partition (see align.RawMarks: with two members, one member's events can run hours
ahead of the other's), and the newest event time of the slowest events partition that
still has records to read or got some in the last RECENT_SECONDS (see align.py). So
catching up on a backlog does not make the slower partitions' events late.

Store outages: a batch whose store step fails is neither committed nor dropped. The stage
backs off (bounded, exponential) and retries the same batch until it succeeds. The events
are written by a thread of their own while the batch is judged (the write mostly waits on
the server): a failed write is retried on its own, the detection state untouched; if
judging or saving alerts and baselines fails instead, that state may hold part of the
batch, so it is loaded again from the store before the retry. Alerts may reach the outbox
a moment before their evidence is stored; the offsets wait for both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import orjson

from detectors.alert import Alert
from pipeline.bus import kafka
from pipeline.bus.align import GRACE_SECONDS, Alignment, RawMarks
from pipeline.bus.kafka import (
    ConsumerRebalanceListener,
    ConsumerRecord,
    KafkaError,
    OffsetAndMetadata,
    TopicPartition,
)
from pipeline.config import Config, KafkaConfig
from pipeline.detection.embedded import EmbeddedDetection
from pipeline.errors import SecretwatchError, StoreError
from pipeline.record import SOURCES, EventRow
from pipeline.sources.base import DeadLetter
from pipeline.store.base import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
RECENT_SECONDS = 5.0
SLOW_SNAPSHOT_SECONDS = 1.0


class Stopped(SecretwatchError):
    """Asked to stop while the store was down: the held batch stays uncommitted."""


def store_unavailable(exc: BaseException) -> bool:
    """Is this the store failing (retry the batch) rather than a bug here (fail loudly)?
    Stores report their failures as StoreError, so a batch the store keeps refusing is
    retried and logged at every attempt, never skipped."""
    if isinstance(exc, StoreError | OSError):
        return True
    try:
        from elastic_transport import TransportError
        from elasticsearch import ApiError
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, ApiError) and (exc.meta.status >= 500 or exc.meta.status == 429)


def decode_record(value: bytes | None) -> list[EventRow] | tuple[float, dict[str, int | None]]:
    """One record of the events topic: its events (a JSON array of event objects, or one
    object as records were before events travelled in arrays), or a normalize member's
    progress marks as (sent, marks) (see `normalize_stage.marks_value`). ValueError,
    TypeError or KeyError if it is neither; then none of it is taken."""
    doc = orjson.loads(value or b"")
    if isinstance(doc, dict) and "marks" in doc:
        marks, sent = doc["marks"], doc.get("at", 0.0)
        if not (
            isinstance(marks, dict)
            and isinstance(sent, int | float)
            and all(isinstance(m, int) or m is None for m in marks.values())
        ):
            raise ValueError("marks are not raw partitions with event times")
        return float(sent), marks
    rows = [EventRow(**item) for item in (doc if isinstance(doc, list) else [doc])]
    for row in rows:
        if not (
            isinstance(row.event_id, str)
            and isinstance(row.ts_us, int)
            and isinstance(row.identity, str)
            and row.source in SOURCES
        ):
            raise ValueError("event_id, ts_us, identity or source has the wrong type")
    return rows


class JudgeStage:
    """Consumes the events topic in group `<group_id>-detect`; runs in its own thread and is
    the only user of the store."""

    def __init__(
        self,
        cfg: Config,
        kcfg: KafkaConfig,
        store: Store,
        store_name: str,
        member: str,
        on_batch: Callable[[list[EventRow], list[int], list[Alert]], None] | None = None,
    ) -> None:
        self.kcfg, self.store_name, self.member = kcfg, store_name, member
        self.topic = kcfg.events_topic
        # Snapshots are taken here, not inside `process`, so a store failure while taking one
        # is retried on its own rather than by reloading the detection state.
        self.store = store
        self.live = EmbeddedDetection(
            store,
            cfg.detection(),
            member,
            lateness_seconds=kcfg.lateness_seconds,
            snapshot_seconds=float("inf"),
        )
        self.last_snapshot = time.monotonic()
        self.lateness = int(kcfg.lateness_seconds * 1_000_000)
        self.consumer = kafka.consumer(kcfg, f"{kcfg.group_id}-detect")
        # The normalize stage writes every partition as it goes: one read to its end a
        # moment ago is about to get more, and must still hold the clock back.
        self.align = Alignment(
            self.consumer, self.lateness, recent_seconds=RECENT_SECONDS, pause=False
        )
        self.marks = RawMarks()
        self.raw = list(kafka.raw_topics(kcfg))
        self.assigned_at = 0.0
        self.producer = kafka.producer(kcfg)  # for dead letters
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="detect-store")
        self.errors = kafka.SendErrors()
        self.on_batch = on_batch
        self.owned: frozenset[int] = frozenset()
        self.partitions = kcfg.partitions
        self.stale = True  # detection state must be (re)loaded before the next batch
        self.stop = threading.Event()
        self.events = self.alerts = self.dead = 0

    # -- ownership ------------------------------------------------------------------------
    def owner(self) -> Callable[[str], str | None]:
        owned, n, topic = self.owned, self.partitions, self.topic

        def owner_of(identity: str) -> str | None:
            p = kafka.partition_of(identity, n)
            return f"{topic}/{p}" if p in owned else None

        return owner_of

    def revoke(self, partitions: Iterable[TopicPartition], snapshot: bool) -> None:
        gone = {tp.partition for tp in partitions if tp.topic == self.topic}
        if snapshot and self.owned and not self.stale:
            try:
                self.live.snapshot()
            except Exception as exc:
                if not store_unavailable(exc):
                    raise
                log.warning(
                    "detect: snapshot on revocation failed (store %s unavailable: %s); "
                    "the next owner judges again from the last snapshot",
                    self.store_name,
                    exc,
                )
        self.owned = self.owned - gone
        self.align.forget(partitions)
        self.marks.forget(gone)
        self.stale = True

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self.owned = self.owned | {tp.partition for tp in partitions if tp.topic == self.topic}
        self.stale = True
        self.assigned_at = time.monotonic()

    def unmarked(self) -> bool:
        """Within GRACE_SECONDS of an assignment, is a raw partition's progress mark still
        unknown on an owned partition? (See align.RawMarks.missing.)"""
        if time.monotonic() - self.assigned_at >= GRACE_SECONDS:
            return False
        raw = [
            f"{topic}/{p}"
            for topic in self.raw
            for p in self.consumer.partitions_for_topic(topic) or ()
        ]
        return self.marks.missing(self.owned, raw)

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.stop = stop
        try:
            kafka.wait_for_partitions(self.consumer, [self.topic], stop)
            listener = _Owner(self)
            self.consumer.subscribe([self.topic], listener=listener)
            idle = kafka.IdleRejoin(self.consumer, [self.topic], listener)
            while not stop.is_set():
                polled = self.consumer.poll(
                    timeout_ms=self.kcfg.poll_timeout_ms, max_records=self.kcfg.batch_max_records
                )
                idle.check(bool(self.owned))
                records = [r for recs in polled.values() for r in recs]
                if not records and not self.stale:
                    self.align.adjust()  # a caught-up partition may release paused ones
                    continue
                try:
                    self._batch(records)
                except Stopped:
                    log.warning("detect: stopped with %d events held; not committed", len(records))
                    return
            self._final_snapshot()
        finally:
            self.writer.shutdown(wait=True, cancel_futures=True)
            self.producer.close()
            self.consumer.close(autocommit=False)

    def _final_snapshot(self) -> None:
        """On a requested stop, after the last committed batch; closing the consumer then
        revokes the partitions without saving the same state again."""
        self.revoke([TopicPartition(self.topic, p) for p in self.owned], snapshot=True)

    def _read(self, records: list[ConsumerRecord]) -> tuple[list[EventRow], list[int]]:
        """The events of the records and each one's record timestamp; progress marks go
        to `marks`, what is not an event to the dead letters, and every partition's
        position and newest event time to the alignment."""
        rows: list[EventRow] = []
        stamps: list[int] = []  # each event's record timestamp
        after: dict[TopicPartition, int] = {}  # offset after the last record, per partition
        newest: dict[TopicPartition, int] = {}  # newest event time, per partition
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            after[tp] = r.offset + 1
            try:
                got = decode_record(r.value)
            except (ValueError, TypeError, KeyError) as exc:
                self._dead(r, f"not an event ({type(exc).__name__}: {exc})")
                continue
            if isinstance(got, tuple):
                self.marks.update(r.partition, *got)
                continue
            if got:
                rows += got
                stamps += [r.timestamp] * len(got)
                latest = max(row.ts_us for row in got)
                newest[tp] = max(newest.get(tp, latest), latest)
        for tp, next_offset in after.items():
            self.align.seen(tp, next_offset, newest.get(tp))
        return rows, stamps

    def _batch(self, records: list[ConsumerRecord]) -> None:
        dead_before = self.dead
        rows, stamps = self._read(records)
        bounds = [b for b in (self.align.adjust(), self.marks.floor()) if b is not None]
        clock = min(bounds) - self.lateness if bounds else None
        if self.align.waiting() or self.unmarked():  # a partition may hold older events
            clock = 0
        # Storing the events (mostly waiting on Elasticsearch) and judging them (CPU here)
        # overlap; the batch is committed only once both are done.
        stored = (
            self.writer.submit(
                self._with_store, lambda: self.store.write_batch(rows), len(rows), False
            )
            if rows
            else None
        )
        try:
            alerts = self._with_store(lambda: self._process(rows, clock), len(rows))
        except BaseException:
            if stored is not None:
                stored.cancel()  # if not started; else it ends with the stop or the store
            raise
        if stored is not None:
            stored.result()
        self.events += len(rows)
        self.alerts += len(alerts)
        if self.on_batch is not None:
            self.on_batch(rows, stamps, alerts)
        if self.dead > dead_before:
            kafka.flush(self.producer, self.errors, f"topic {self.kcfg.dead_letter_topic}")
        self._commit(records)
        if time.monotonic() - self.last_snapshot >= self.kcfg.snapshot_seconds:
            began = time.monotonic()
            self._with_store(self.live.snapshot, 0, reload=False)
            self.last_snapshot = time.monotonic()
            took = self.last_snapshot - began
            # Judging waits meanwhile: a slow snapshot shows in the delays.
            log.log(
                logging.INFO if took >= SLOW_SNAPSHOT_SECONDS else logging.DEBUG,
                "detect: snapshot took %.2f s",
                took,
            )

    def _process(self, rows: list[EventRow], clock_us: int | None) -> list[Alert]:
        """Store, judge and learn; the clock is the slowest partition's (see align.py)."""
        if self.stale:
            self.partitions = len(self.consumer.partitions_for_topic(self.topic) or ()) or (
                self.partitions
            )
            self.live.own(self.owner())
            self.stale = False
            log.info("detect: owns partitions %s of %s", sorted(self.owned), self.topic)
        return self.live.feed(rows, clock_us=clock_us)

    def _with_store(self, step: Callable[[], T], held: int, reload: bool = True) -> T:
        """Run a store step until it succeeds; between tries, wait (0.5 s doubling to 30 s).
        With `reload`, the step may have changed the detection state before failing, so the
        state is loaded again from the store before the next try."""
        delay = BACKOFF_FIRST
        while True:
            try:
                return step()
            except Exception as exc:
                if not store_unavailable(exc):
                    raise
                self.stale = self.stale or reload
                log.warning(
                    "detect: store %s unavailable (%s: %s); holding %d events, offsets not "
                    "committed; retrying in %.1f s",
                    self.store_name,
                    type(exc).__name__,
                    exc,
                    held,
                    delay,
                )
            if self.stop.wait(delay):
                raise Stopped("stopped while the store was unavailable")
            delay = min(delay * 2, BACKOFF_MAX)

    def _commit(self, records: list[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            offsets[TopicPartition(r.topic, r.partition)] = OffsetAndMetadata(r.offset + 1, "", -1)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError as exc:  # e.g. a rebalance took the partitions meanwhile
            log.warning("detect: commit failed (%s); the batch may be read again", exc)

    def _dead(self, record: ConsumerRecord, reason: str) -> None:
        raw = record.value or b""
        letter = DeadLetter.of((raw, record.offset, record.offset), self.topic, reason, None)
        where = {"topic": record.topic, "partition": record.partition, "member": self.member}
        key = f"{record.topic}/{record.partition}/{record.offset}".encode()
        value = kafka.dead_letter_value(letter, **where)
        self.producer.send(self.kcfg.dead_letter_topic, value, key).add_errback(self.errors)
        self.dead += 1


class _Owner(ConsumerRebalanceListener):
    """Runs on the consumer's IO thread while `poll` waits, so it must not call blocking
    consumer APIs; the snapshot on revocation is a store write, done here because it has to
    finish before any member is given the partitions."""

    def __init__(self, stage: JudgeStage) -> None:
        self.stage = stage

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.stage.revoke(revoked, snapshot=True)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.stage.assign(assigned)

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.stage.revoke(lost, snapshot=False)  # already someone else's: nothing to save
