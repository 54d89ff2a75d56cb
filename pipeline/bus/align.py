"""Event-time alignment of a consumer's partitions while it catches up on a backlog.

Live detection judges events against a clock (the newest event time, less a lateness), and
events older than what it has already learned from are stored but not judged. Streaming in
real time, partitions advance together; catching up (after an outage, a restart, a backfill)
they do not: one partition, or one source's raw topic, can run days ahead in event time of
another, and the other's events would all arrive "late". So a partition more than `slack`
ahead of the slowest partition that still has records to read is paused until that one
catches up, and that slowest partition's newest event time is the clock the detect stage
passes on (`floor`).

A partition whose newest event time is not known yet neither holds the others back nor is
paused: alignment never stalls a consumer.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.bus.kafka import KafkaConsumer, KafkaError, TopicPartition


class Alignment:
    def __init__(self, consumer: KafkaConsumer, slack_us: int) -> None:
        self.consumer, self.slack = consumer, slack_us
        self.newest: dict[TopicPartition, int] = {}  # newest event time read, per partition
        self.next: dict[TopicPartition, int] = {}  # offset after the last record read

    def seen(self, tp: TopicPartition, next_offset: int, newest_us: int | None) -> None:
        self.next[tp] = next_offset
        if newest_us is not None:
            self.newest[tp] = max(self.newest.get(tp, newest_us), newest_us)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.newest.pop(tp, None)
            self.next.pop(tp, None)

    def floor(self) -> int | None:
        """The newest event time of the slowest partition with records still to read (None:
        every partition is caught up, or none has told its event time yet)."""
        marks = [
            self.newest[tp] for tp in self._assigned() if tp in self.newest and self._behind(tp)
        ]
        return min(marks) if marks else None

    def adjust(self) -> int | None:
        """Pause the partitions too far ahead, resume the others; return the floor."""
        _release_parked(self.consumer)
        floor = self.floor()
        assigned = self._assigned()
        ahead = set()
        if floor is not None:
            ahead = {tp for tp in assigned if self.newest.get(tp, floor) > floor + self.slack}
        paused = set(self.consumer.paused()) & assigned
        if ahead - paused:
            self.consumer.pause(*(ahead - paused))
        if paused - ahead:
            self.consumer.resume(*(paused - ahead))
        return floor

    def _assigned(self) -> set[TopicPartition]:
        return set(self.consumer.assignment() or ())

    def _behind(self, tp: TopicPartition) -> bool:
        high = self.consumer.highwater(tp)
        if high is None:
            return False
        position = self.next.get(tp)
        if position is None:
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except KafkaError:  # not assigned any more
                return False
        return position is not None and position < high


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
