"""Event-time alignment of a consumer's partitions, so that catching up on a backlog does not
make events late.

Live detection judges events against a clock (the newest event time, less a lateness), and
events older than what it has already learned from are stored but not judged. Streaming in
real time, partitions advance together; catching up (after an outage, a restart, a backfill)
they do not: one partition, or one source's raw topic, can run days ahead in event time of
another, and the other's events would all arrive "late".

So the stages go by `floor`: the newest event time of the slowest partition that still has
records to read (or, with `recent_seconds`, that got records that recently: a partition
read to its end a moment ago may get more at once, as the detect stage's partitions do
while the normalize stage writes them). The normalize stage produces only events up to the
floor, so the events topic advances in event time; the detect stage learns only up to it,
less the lateness. Pausing the partitions more than `slack` ahead of the floor keeps what
waits small: one fetch of a partition can span hours of event time.

Whether a partition has records still to read comes from the end offsets the broker
reports, asked at most once a second, and the high watermarks of fetches: a fetch's high
watermark alone is stale as soon as more records arrive.

A partition not heard from yet (no fetch answered since it was assigned) could hold older
events than any other: for up to GRACE_SECONDS after its assignment it holds everything
back (`waiting`). After that, a partition whose newest event time is not known neither
holds the others back nor is paused: alignment never stalls a consumer.

Several normalize members each produce their own raw partitions' events in order, but
interleaved on the events topic; `RawMarks` carries each raw partition's progress to the
detect stage, which learns only up to the slowest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from pipeline.bus.kafka import KafkaConsumer, KafkaError, TopicPartition

log = logging.getLogger(__name__)
# Long enough for a member's normalize process to be given its partitions on a busy host:
# at 10 s, a loaded machine (both cores busy) saw them 12 s after detect's, and events of
# their raw partitions came to detection late (stored, not judged).
GRACE_SECONDS = 60.0
ENDS_SECONDS = 1.0  # how often end offsets are asked for


class Alignment:
    def __init__(
        self,
        consumer: KafkaConsumer,
        slack_us: int,
        recent_seconds: float = 0.0,
        pause: bool = True,
    ) -> None:
        self.consumer, self.slack, self.recent = consumer, slack_us, recent_seconds
        self.pause = pause
        self.newest: dict[TopicPartition, int] = {}  # newest event time read, per partition
        self.next: dict[TopicPartition, int] = {}  # offset after the last record read
        self.heard: dict[TopicPartition, float] = {}  # when records last came (monotonic)
        self.since: dict[TopicPartition, float] = {}  # when first seen assigned (monotonic)
        self.ends: dict[TopicPartition, int] = {}  # end offsets, as last asked
        self.ends_at = 0.0

    def seen(self, tp: TopicPartition, next_offset: int, newest_us: int | None) -> None:
        self.next[tp] = next_offset
        self.heard[tp] = time.monotonic()
        if newest_us is not None:
            self.newest[tp] = max(self.newest.get(tp, newest_us), newest_us)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            for known in (self.newest, self.next, self.heard, self.since, self.ends):
                known.pop(tp, None)

    def waiting(self) -> bool:
        """Is an assigned partition, within GRACE_SECONDS of its assignment, not heard from
        yet, or one with records to read none of which has been read yet (records just
        written to a partition that was caught up)? Its events could be older than any
        other's, so until it is read nothing may count as on time. Such a partition is
        never paused, so the wait ends with its next fetch."""
        now = time.monotonic()
        for tp in self.assigned():
            since = self.since.setdefault(tp, now)
            if tp in self.heard:
                continue
            if self.consumer.highwater(tp) is None and now - since < GRACE_SECONDS:
                return True
            if self.behind(tp):
                return True
        return False

    def floor(self) -> int | None:
        """The newest event time of the slowest partition with records still to read, or
        heard from within `recent_seconds` (None: there is none, or none has told its
        event time yet)."""
        now = time.monotonic()
        marks = [
            self.newest[tp]
            for tp in self.assigned()
            if tp in self.newest
            and (now - self.heard.get(tp, 0.0) < self.recent or self.behind(tp))
        ]
        return min(marks) if marks else None

    def adjust(self) -> int | None:
        """Pause the partitions too far ahead, resume the others; return the floor."""
        _release_parked(self.consumer)
        self._ask_ends()
        floor = self.floor()
        assigned = self.assigned()
        ahead = set()
        if floor is not None and self.pause:
            ahead = {tp for tp in assigned if self.newest.get(tp, floor) > floor + self.slack}
        paused = set(self.consumer.paused()) & assigned
        if ahead - paused:
            self.consumer.pause(*(ahead - paused))
        if paused - ahead:
            self.consumer.resume(*(paused - ahead))
        return floor

    def _ask_ends(self) -> None:
        now = time.monotonic()
        assigned = self.assigned()
        if not assigned or now - self.ends_at < ENDS_SECONDS:
            return
        self.ends_at = now
        try:
            self.ends = dict(self.consumer.end_offsets(list(assigned)))
        except KafkaError as exc:  # go by the fetches' high watermarks meanwhile
            log.debug("end offsets not available: %s", exc)

    def assigned(self) -> set[TopicPartition]:
        return set(self.consumer.assignment() or ())

    def behind(self, tp: TopicPartition) -> bool:
        """Has the partition records still to read?"""
        high = max(self.consumer.highwater(tp) or -1, self.ends.get(tp, -1))
        if high < 0:
            return False
        position = self.next.get(tp)
        if position is None:
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except KafkaError:  # not assigned any more
                return False
        return position is not None and position < high


MARKS_TTL_SECONDS = 30.0


class RawMarks:
    """The normalize members' progress marks (`normalize_stage.marks_value`) as the detect
    stage reads them, per events partition: once a member's marks are read on a partition,
    every event it produced there up to them has been read too (one partition keeps the
    order of one producer). The slowest mark of the owned partitions bounds what detection
    may learn from. A mark not renewed for MARKS_TTL_SECONDS is forgotten: its member is
    gone and no other has taken its raw partition over (a new owner sends marks at once),
    and a forgotten mark must not hold detection back for ever."""

    def __init__(self) -> None:
        # (events partition, raw partition) -> (sent, mark, received)
        self.marks: dict[tuple[int, str], tuple[float, int | None, float]] = {}

    def update(self, partition: int, sent: float, marks: dict[str, int | None]) -> None:
        now = time.monotonic()
        for name, mark in marks.items():
            old = self.marks.get((partition, name))
            if old is None or sent >= old[0]:
                self.marks[partition, name] = (sent, mark, now)

    def forget(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self.marks = {k: v for k, v in self.marks.items() if k[0] not in gone}

    def missing(self, partitions: Iterable[int], raw: Iterable[str]) -> bool:
        """Has one of these events partitions not yet told the mark of one of these raw
        partitions? Then a member that has not produced yet may hold older events than
        any mark so far (each member sends marks as soon as it has read its partitions)."""
        have = set(self.marks)
        return any((p, name) not in have for p in partitions for name in raw)

    def floor(self) -> int | None:
        """The slowest mark (None: every raw partition is caught up, or none told)."""
        now = time.monotonic()
        live = [
            m
            for _, m, got in self.marks.values()
            if m is not None and now - got < MARKS_TTL_SECONDS
        ]
        return min(live) if live else None


def _release_parked(consumer: KafkaConsumer) -> None:
    """Work around kafka-python 3.0.x: records fetched for a partition that was then paused
    are parked, and given back on resume only when the fetcher's in-line slot is None; but a
    drained slot keeps its (empty) records object, so a resumed partition's parked records
    were never returned and the partition never fetched again (the consumer stalled). An
    empty slot is the same as None to the fetcher in every other respect."""
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current:
        fetcher._next_partition_records = None  # type: ignore[union-attr]
