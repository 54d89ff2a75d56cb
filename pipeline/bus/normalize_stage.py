"""The normalize stage of `secretwatch run`: raw topics -> `EventRow`s keyed by identity on
the events topic, bad records to the dead-letter topic.

Each raw partition has its own parser (a Vault request and its response share a key, so a
partition), fed with Kafka offsets where a file parser gets byte offsets. A partition's
committed offset never passes the oldest record whose event has not been produced yet (a
request waiting for its response), and commits happen only after the producer flushed, so a
killed member re-reads at most a few records and the store absorbs the duplicates.

A record of the events topic is a JSON array of events (`events_value`); this stage writes
one event per record, in the order parsed. Grouping a poll's events by identity into fewer
records made the Python client's work smaller but reordered events across identities; with
it, one CI run saw a member taking over after a kill -9 raise one incident twice (the cause
is not proven), and it did not raise the member's rate (detection is its limit). A
record's Kafka timestamp is the time its event's raw record was produced, so the detect
stage can tell the end-to-end delay.
"""

from __future__ import annotations

import logging
import threading
import time
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


@dataclass
class _Partition:
    """One raw partition's parser and how far its records have become produced events."""

    name: str
    parser: Parser
    next_offset: int = -1  # after the last record fed
    committed: int = -1
    quiet_since: float = field(default_factory=time.monotonic)
    last_stamp: int = 0  # produce time of the last record fed (ms)

    def commit_position(self) -> int:
        pending = self.parser.pending_position()
        return pending[0] if pending is not None else self.next_offset


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
        self.partition_count = 0  # of the events topic; see _partitioner
        self.partition_cache: dict[str, int] = {}

    def run(self, stop: threading.Event) -> None:
        try:
            kafka.wait_for_partitions(self.consumer, list(self.sources), stop)
            self.consumer.subscribe(list(self.sources), listener=_Forget(self))
            while not stop.is_set():
                polled = self.consumer.poll(
                    timeout_ms=self.kcfg.poll_timeout_ms, max_records=self.kcfg.batch_max_records
                )
                sent = any([self._take(tp, recs) for tp, recs in polled.items()])
                sent = self._flush_idle() or sent
                self.align.adjust()
                if sent:
                    kafka.flush(self.producer, self.errors, f"topic {self.kcfg.events_topic}")
                self._commit()
        finally:
            self.producer.close()
            self.consumer.close(autocommit=False)

    def _take(self, tp: TopicPartition, records: list[ConsumerRecord]) -> bool:
        part = self.parts.get(tp)
        if part is None:
            source = self.sources[tp.topic]
            parser = new_parser(source, self.cfg.backends.get(source))
            part = self.parts[tp] = _Partition(f"{tp.topic}/{tp.partition}", parser)
        fed = [(r.value or b"", r.offset, r.offset) for r in records]
        result = part.parser.feed(fed, part.name)
        part.next_offset = records[-1].offset + 1
        part.quiet_since = time.monotonic()
        part.last_stamp = records[-1].timestamp
        self.records += len(records)
        newest = max((row.ts_us for row in result.rows), default=None)
        self.align.seen(tp, part.next_offset, newest)
        # Produce time of each event's raw record: the event id is the record's key (Vault
        # request.id, CloudTrail eventID, ...); otherwise the batch's oldest.
        stamps = {r.key: r.timestamp for r in records if r.key is not None}
        self._send(tp, result, stamps, records[0].timestamp)
        return bool(result.rows or result.dead)

    def _flush_idle(self) -> bool:
        """A request unanswered while its partition has been quiet counts alone (like the
        follower's idle flush): otherwise its offset would hold the commit back forever."""
        sent = False
        now = time.monotonic()
        for tp, part in self.parts.items():
            if part.parser.pending_position() and now - part.quiet_since > IDLE_FLUSH_SECONDS:
                result = part.parser.flush(part.name)
                self._send(tp, result, {}, part.last_stamp)  # produced by then, at the latest
                sent = sent or bool(result.rows or result.dead)
        return sent

    def _send(
        self, tp: TopicPartition, result: FeedResult, stamps: dict[bytes, int], oldest: int
    ) -> None:
        send, topic, errors = self.producer.send, self.kcfg.events_topic, self.errors
        partition = self._partitioner(len(self.producer.partitions_for(topic)))
        for row in result.rows:
            stamp = stamps.get(row.event_id.encode(), oldest)
            future = send(topic, events_value([row]), row.identity.encode(),
                          partition=partition(row.identity), timestamp_ms=stamp)
            future.add_errback(errors)
        for letter in result.dead:
            where = {"topic": tp.topic, "partition": tp.partition, "member": self.member}
            send(
                self.kcfg.dead_letter_topic,
                kafka.dead_letter_value(letter, **where),
                f"{tp.topic}/{tp.partition}/{letter.offset}".encode(),
            ).add_errback(errors)
        self.events += len(result.rows)
        self.dead += len(result.dead)

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

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions taken away: their waiting requests will be re-read by the new owner
        from the committed offset, which never passed them."""
        partitions = list(partitions)
        for tp in partitions:
            self.parts.pop(tp, None)
        self.align.forget(partitions)


class _Forget(ConsumerRebalanceListener):
    """Everything produced is committed between polls, so a revocation only drops state."""

    def __init__(self, stage: NormalizeStage) -> None:
        self.stage = stage

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.stage.forget(revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("normalize: assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.stage.forget(lost)

