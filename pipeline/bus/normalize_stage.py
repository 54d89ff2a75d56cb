"""The normalize stage of `secretwatch run`: raw topics -> `EventRow`s keyed by identity on
the events topic, bad records to the dead-letter topic.

Each raw partition has its own parser (a Vault request and its response share a key, so a
partition), fed with Kafka offsets where a file parser gets byte offsets.

Order: parsed events wait until no raw partition still to be read can hold older ones (the
newest event time of the slowest, see align.py), then go out oldest first. Catching up on a
backlog, one fetch of a partition spans hours of event time; produced as read, the events
of the partitions read next would all come late to detection, which would store them but
not judge them.

A record of the events topic is a JSON array of events (`events_value`); this stage writes
one event per record, in that order, keyed by identity. (Grouping a poll's events by
identity into fewer records made the Python client's work smaller, but it reordered events
across identities and did not raise a member's rate: detection is its limit.) A record's
Kafka timestamp is the time its event's raw record was produced, so the detect stage can
tell the end-to-end delay. Progress marks (`marks_value`) go to every events partition so
that the detect stage knows how far each raw partition has been produced.

Commits: a partition's committed offset never passes the oldest record whose event has not
been produced yet (a request waiting for its response, or an event waiting for the slower
partitions), and commits happen only after the producer flushed, so a killed member
re-reads some records and the store absorbs the duplicates.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from pipeline.bus import kafka
from pipeline.bus.align import Alignment
from pipeline.bus.follow import IDLE_FLUSH_SECONDS
from pipeline.bus.kafka import (
    ConsumerRebalanceListener,
    ConsumerRecord,
    KafkaError,
    OffsetAndMetadata,
    TopicPartition,
)
from pipeline.config import Config, KafkaConfig
from pipeline.record import FIELDS, EventRow
from pipeline.sources import new_parser
from pipeline.sources.base import FeedResult, Parser
from pipeline.timewindow import quarantine

log = logging.getLogger(__name__)


def events_value(rows: Iterable[EventRow]) -> bytes:
    """A record of the events topic: a JSON array of events, each the `EventRow` fields as
    an object.

    >>> from pipeline.record import EventRow
    >>> events_value([EventRow("r1", 5, "vault", "v", "app", "service", None, "read", "read",
    ...     "success", None, None, None, None, None)])[:41]
    b'[{"event_id":"r1","ts_us":5,"source":"vau'
    """
    return orjson.dumps([dict(zip(FIELDS, row, strict=True)) for row in rows])


MARKS_SECONDS = 0.5  # at most this often, progress marks go to the events topic
MARKS_RESEND_SECONDS = 5.0  # and again this often while a raw partition is behind


def marks_value(marks: dict[str, int | None], member: str) -> bytes:
    """A progress record of the events topic, sent to each of its partitions: for each raw
    partition (`topic/partition`) this member reads, the event time up to which its events
    have all been produced, or None once it is caught up with nothing held. With several
    members each normalizing its own raw partitions, one member's events can be hours
    ahead of another's; the detect stage learns only up to the slowest mark, so the events
    the other member produces next do not come late (see judge_stage.py).

    >>> marks_value({"raw.vault/0": 5, "raw.aws/1": None}, "m1")[:50]
    b'{"marks":{"raw.vault/0":5,"raw.aws/1":null},"membe'
    """
    return orjson.dumps({"marks": marks, "member": member, "at": time.time()})


@dataclass
class _Held:
    """Events parsed from some records, in event-time order, waiting for the slower
    partitions; `sent` of them have gone out. `low[i]`: the oldest offset a reader must go
    back to for the events from the i-th on (each event's first record, where its id names
    it: a Vault call's id is its records' key, and a response read alone makes the same
    event; otherwise the first record of the lot), so a commit passes the records of events
    already sent and a new owner produces fewer copies."""

    ts: list[int]
    rows: list[EventRow]
    stamps: list[int]  # produce time of each one's raw record (ms)
    low: list[int]
    sent: int = 0


@dataclass
class _Partition:
    """One raw partition's parser and how far its records have become produced events."""

    name: str
    parser: Parser
    next_offset: int = -1  # after the last record fed
    committed: int = -1
    quiet_since: float = field(default_factory=time.monotonic)
    last_stamp: int = 0  # produce time of the last record fed (ms)
    newest: int | None = None  # newest event time parsed
    held: deque[_Held] = field(default_factory=deque)

    def commit_position(self) -> int:
        pending = self.parser.pending_position()
        positions = [self.next_offset]
        if pending is not None:
            positions.append(pending[0])
        positions.extend(held.low[held.sent] for held in self.held)
        return min(positions)

    def hold(self, rows: list[EventRow], stamps: list[int], offsets: list[int]) -> None:
        """Hold events with their records' produce times and first offsets."""
        if rows:
            order = sorted(range(len(rows)), key=lambda i: rows[i].ts_us)
            low = [offsets[i] for i in order]
            for i in range(len(low) - 2, -1, -1):
                low[i] = min(low[i], low[i + 1])
            self.held.append(
                _Held(
                    [rows[i].ts_us for i in order],
                    [rows[i] for i in order],
                    [stamps[i] for i in order],
                    low,
                )
            )

    def release(self, limit: int | None) -> list[tuple[int, EventRow, int]]:
        """Held events up to event time `limit` (all if None), as (time, row, stamp)."""
        out: list[tuple[int, EventRow, int]] = []
        while self.held:
            held = self.held[0]
            cut = len(held.ts) if limit is None else bisect.bisect_right(held.ts, limit)
            if cut > held.sent:
                out += zip(
                    held.ts[held.sent : cut],
                    held.rows[held.sent : cut],
                    held.stamps[held.sent : cut],
                    strict=True,
                )
                held.sent = cut
            if cut < len(held.ts):
                break  # later ones are newer still
            self.held.popleft()
        return out


class NormalizeStage:
    """Consumes the raw topics in group `<group_id>-normalize`; runs in its own thread."""

    def __init__(self, cfg: Config, kcfg: KafkaConfig, member: str) -> None:
        self.cfg, self.kcfg, self.member = cfg, kcfg, member
        self.sources = kafka.raw_topics(kcfg)
        self.parts: dict[TopicPartition, _Partition] = {}
        self.consumer = kafka.consumer(kcfg, f"{kcfg.group_id}-normalize")
        self.producer = kafka.producer(kcfg)
        self.errors = kafka.SendErrors()
        self.align = Alignment(self.consumer, int(kcfg.lateness_seconds * 1_000_000))
        self.records = self.events = self.dead = 0
        self.unflushed = False  # dead letters sent since the last flush
        self.partition_count = 0  # of the events topic; see _partitioner
        self.partition_cache: dict[str, int] = {}
        self.dormant: dict[TopicPartition, _Partition] = {}  # see `forget`
        self.marks_sent: dict[str, int | None] = {}
        self.marks_at = 0.0
        self.released = False  # events went out since the last marks

    def run(self, stop: threading.Event) -> None:
        try:
            kafka.wait_for_partitions(self.consumer, list(self.sources), stop)
            listener = _Forget(self)
            self.consumer.subscribe(list(self.sources), listener=listener)
            idle = kafka.IdleRejoin(self.consumer, list(self.sources), listener)
            while not stop.is_set():
                polled = self.consumer.poll(
                    timeout_ms=self.kcfg.poll_timeout_ms, max_records=self.kcfg.batch_max_records
                )
                idle.check(bool(self.consumer.assignment()))
                for tp, records in polled.items():
                    self._take(tp, records)
                self._flush_idle()
                floor = self.align.adjust()
                limit = -1 if self.align.waiting() else floor
                sent = self._release(limit)
                if limit != -1:
                    sent = self._send_marks(limit) or sent
                if sent or self.unflushed:
                    kafka.flush(self.producer, self.errors, f"topic {self.kcfg.events_topic}")
                    self.unflushed = False
                self._commit()
        finally:
            self.producer.close()
            self.consumer.close(autocommit=False)

    def _part(self, tp: TopicPartition) -> _Partition:
        part = self.parts.get(tp)
        if part is None:
            source = self.sources[tp.topic]
            parser = new_parser(source, self.cfg.backends.get(source))
            part = self.parts[tp] = _Partition(f"{tp.topic}/{tp.partition}", parser)
        return part

    def _take(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        part = self._part(tp)
        fed = [(r.value or b"", r.offset, r.offset) for r in records]
        waiting = part.parser.pending_position()  # may become events of this feed
        result = part.parser.feed(fed, part.name)
        # Implausible times never reach the alignment or detection's clock.
        now_us = int(time.time() * 1_000_000)
        quarantine(result, part.name, self.sources[tp.topic], self.cfg.ingest.time_window, now_us)
        part.next_offset = records[-1].offset + 1
        part.quiet_since = time.monotonic()
        part.last_stamp = records[-1].timestamp
        self.records += len(records)
        newest = max((row.ts_us for row in result.rows), default=None)
        if newest is not None:
            part.newest = max(part.newest or newest, newest)
        self.align.seen(tp, part.next_offset, newest)
        # Produce time of each event's raw record: the event id is the record's key (Vault
        # request.id, CloudTrail eventID, ...); otherwise the batch's oldest.
        stamps: dict[bytes, int] = {}
        first: dict[bytes, int] = {}
        for r in records:
            if r.key is not None:
                stamps[r.key] = r.timestamp
                first.setdefault(r.key, r.offset)
        oldest, start = records[0].timestamp, records[0].offset
        if waiting is not None:
            start = min(start, waiting[0])
        ids = [row.event_id.encode() for row in result.rows]
        part.hold(
            result.rows,
            [stamps.get(i, oldest) for i in ids],
            [first.get(i, start) for i in ids],
        )
        self._dead_letters(tp, result)

    def _flush_idle(self) -> None:
        """A request unanswered while its partition has been quiet counts alone (like the
        follower's idle flush): otherwise its offset would hold the commit back forever."""
        now = time.monotonic()
        for tp, part in self.parts.items():
            pending = part.parser.pending_position()
            if pending and now - part.quiet_since > IDLE_FLUSH_SECONDS:
                result = part.parser.flush(part.name)
                now_us = int(time.time() * 1_000_000)
                source = self.sources[tp.topic]
                quarantine(result, part.name, source, self.cfg.ingest.time_window, now_us)
                # produced by then, at the latest
                n = len(result.rows)
                part.hold(result.rows, [part.last_stamp] * n, [pending[0]] * n)
                self._dead_letters(tp, result)

    def _release(self, limit: int | None) -> bool:
        """Produce the held events up to event time `limit` (all if None), oldest first; True
        if any went out."""
        out = sorted(
            (item for part in self.parts.values() for item in part.release(limit)),
            key=lambda item: item[0],
        )
        if not out:
            return False
        send, topic, errors = self.producer.send, self.kcfg.events_topic, self.errors
        partition = self._partitioner(len(self.producer.partitions_for(topic)))
        for _, row, stamp in out:
            future = send(
                topic,
                events_value([row]),
                row.identity.encode(),
                partition=partition(row.identity),
                timestamp_ms=stamp,
            )
            future.add_errback(errors)
        self.events += len(out)
        self.released = True
        return True

    def _send_marks(self, limit: int | None) -> bool:
        """Tell every events partition how far each owned raw partition has been produced
        (see `marks_value`): when that changed or events went out (at most every
        MARKS_SECONDS), and again every MARKS_RESEND_SECONDS while one is not caught up;
        nothing while all are caught up and nothing comes."""
        marks: dict[str, int | None] = {}
        for tp in self.align.assigned():
            part = self.parts.get(tp)
            done = (part is None or not part.held) and not self.align.behind(tp)
            marks[f"{tp.topic}/{tp.partition}"] = None if done else limit
        now = time.monotonic()
        changed = marks != self.marks_sent or self.released
        if not marks or not (
            (changed and now - self.marks_at >= MARKS_SECONDS)
            or (now - self.marks_at >= MARKS_RESEND_SECONDS and any(marks.values()))
        ):
            return False
        topic = self.kcfg.events_topic
        value = marks_value(marks, self.member)
        for number in range(len(self.producer.partitions_for(topic))):
            self.producer.send(topic, value, partition=number).add_errback(self.errors)
        self.marks_sent, self.marks_at, self.released = marks, now, False
        return True

    def _dead_letters(self, tp: TopicPartition, result: FeedResult) -> None:
        for letter in result.dead:
            where = {"topic": tp.topic, "partition": tp.partition, "member": self.member}
            self.producer.send(
                self.kcfg.dead_letter_topic,
                kafka.dead_letter_value(letter, **where),
                f"{tp.topic}/{tp.partition}/{letter.offset}".encode(),
            ).add_errback(self.errors)
        self.dead += len(result.dead)
        self.unflushed = self.unflushed or bool(result.dead)

    def _partitioner(self, count: int) -> Callable[[str], int]:
        """The default partitioner's choice for an identity (murmur2 of the key, as every
        Kafka client makes it), remembered: identities are few and hashing in Python per
        record was a tenth of this stage's time."""
        if count != self.partition_count:
            self.partition_count, self.partition_cache = count, {}
        cache = self.partition_cache

        def partition(identity: str) -> int:
            found = cache.get(identity)
            if found is None:
                found = cache[identity] = kafka.partition_of(identity, count)
            return found

        return partition

    def _commit(self) -> None:
        offsets = {}
        for tp, part in self.parts.items():
            position = part.commit_position()
            if position > part.committed:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError as exc:  # e.g. a rebalance took the partitions: re-read elsewhere
            log.warning("normalize: commit failed (%s); these records may be read again", exc)
            return
        for tp, meta in offsets.items():
            self.parts[tp].committed = meta.offset

    def forget(self, partitions: Iterable[TopicPartition], lost: bool = False) -> None:
        """Partitions taken away: their waiting requests and held events will be re-read by
        the new owner from the committed offset, which never passed them. A rebalance
        takes every partition away and may give some back at once: their state is kept
        for `reassigned` (not when `lost`: then another member has them already)."""
        partitions = list(partitions)
        for tp in partitions:
            part = self.parts.pop(tp, None)
            if part is not None and not lost:
                self.dormant[tp] = part
        self.align.forget(partitions)

    def reassigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Partitions given back to this member go on where they were, with their requests
        and held events: nobody else read them meanwhile. The read position is set to
        match (`seek` only sets it, so it is safe inside the group callback)."""
        for tp in assigned:
            part = self.dormant.pop(tp, None)
            if part is not None and part.next_offset >= 0:
                self.parts[tp] = part
                self.consumer.seek(tp, part.next_offset)
                self.align.seen(tp, part.next_offset, part.newest)
        self.dormant = {}


class _Forget(ConsumerRebalanceListener):
    """Everything produced is committed between polls, so a revocation only sets state
    aside (see `NormalizeStage.forget`)."""

    def __init__(self, stage: NormalizeStage) -> None:
        self.stage = stage

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.stage.forget(revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.stage.reassigned(assigned)
        log.info("normalize: assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.stage.forget(lost, lost=True)
