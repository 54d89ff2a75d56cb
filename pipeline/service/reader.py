"""The service's one writer of events: a thread that follows every collector's spool (and
the `file` collectors' paths) with the machinery of `ingest --follow`, so each batch is
stored with its checkpoint in one transaction and a restart resumes from there.

Two threads share the work: the reader parses the next batch while a writer stores the one
before (the store works without the interpreter lock, and a commit waits on the disk),
one batch waiting between them at most, stored in the order read. Collectors wake the
reader as soon as they have spooled something; the follow poll interval only bounds the
wait (rotation, quiet Vault requests). The writer also stores the dead letters collectors
rejected at the door, prunes each spool behind its checkpoint and updates the spool
depths; the first pass that finds nothing new, with nothing left to store, makes the
service ready. When the store refuses a write (a cluster away, a disk full) the writer
drops what is queued, and the reader waits, with back-off, and reads again from the stored
checkpoints: the collectors go on spooling meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.bus.follow import Batch, open_followed, read_batch, store_batch
from pipeline.bus.followed import Followed
from pipeline.collectors.base import Intake
from pipeline.collectors.spool import Spool
from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.errortext import clean_error
from pipeline.ingest import IngestSummary
from pipeline.record import EventRow
from pipeline.service.metrics import ServiceMetrics
from pipeline.store.base import EventLog

log = logging.getLogger(__name__)

REJECTED = "rejected"  # queued for the writer: store the door's dead letters
DRAIN_SECONDS = 30.0  # at shutdown, how long the reader may go on storing what is spooled
RETRY_SECONDS = 0.5  # the first wait after the store refused a write; doubled up to:
MAX_RETRY_SECONDS = 30.0


@dataclass
class Source:
    """One followed file: a collector's spool, or a path a `file` collector follows."""

    collector: str
    path: Path
    fmt: str | None
    spool: Spool | None = None
    intake: Intake | None = None
    followed: Followed | None = None
    summary: IngestSummary = field(default_factory=IngestSummary)
    over_warning: bool = False  # the spool depth is above `spool.warn_bytes` (logged once)

    @property
    def source(self) -> str:
        """The source label of its metrics: its format, or the one recognized."""
        if self.fmt:
            return self.fmt
        known = self.summary.formats.most_common(1)
        return known[0][0] if known else "unknown"


class Reader:
    """Follows `sources` into `store` on a thread of its own until `stop`."""

    def __init__(
        self,
        store: EventLog,
        config: Config,
        sources: list[Source],
        metrics: ServiceMetrics,
        wake: threading.Event,
        on_stored: Callable[[list[EventRow]], None] | None = None,
        before_store: Callable[[list[EventRow]], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.sources = sources
        self.metrics = metrics
        self.wake = wake
        self.on_stored, self.before_store = on_stored, before_store
        self.ready = threading.Event()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._drain_seconds = DRAIN_SECONDS
        self._retry = RETRY_SECONDS
        self._thread: threading.Thread | None = None
        # Following, the reader thread parses the next batch while a writer thread stores
        # the one before (DuckDB and Elasticsearch work without the interpreter lock, and a
        # commit waits on the disk): batches in order, one waiting at most. A write that
        # failed stops the writing until the reader has reopened from the checkpoints.
        self._batches: queue.Queue[tuple[Source, Batch] | str | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._rejected_queued = threading.Event()  # a REJECTED waits for the writer

    def open(self) -> None:
        """Open every followed file where its stored checkpoint left it (in the caller's
        thread, so a missing file is an error at startup)."""
        for s in self.sources:
            saved_at = self.store.checkpoint
            if s.spool is not None:
                spool = s.spool
                saved_at = lambda key: self.store.checkpoint(key) or spool.start(key)  # noqa: E731, B023
            s.followed = open_followed(
                s.path, saved_at, s.fmt, self.config.backends, s.summary, None
            )
            if s.spool is not None:
                self._depth(s, s.spool.depth(self.store.checkpoint(s.followed.key)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="secretwatch-reader", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Store what is spooled (for at most `drain_seconds`), then stop."""
        self._drain_seconds = drain_seconds
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(drain_seconds + 10)
        for s in self.sources:
            if s.followed is not None and s.followed.handle is not None:
                s.followed.handle.close()

    def _run(self) -> None:
        writer = threading.Thread(target=self._write, name="secretwatch-writer", daemon=True)
        writer.start()
        try:
            while not self._stop.is_set():
                try:
                    self._follow()
                except StoreError as exc:
                    self._wait_for_store(exc)
            try:
                self._settle()  # what is queued is stored before the drain below
            except StoreError as exc:
                self._wait_for_store(exc)  # the drain reads it again from the checkpoints
            deadline = time.monotonic() + self._drain_seconds
            while self.pass_once() and time.monotonic() < deadline:
                pass
        except BaseException as exc:  # the service sees it through `errors` and `alive`
            self.errors.append(exc)
            log.exception("event=reader_failed")
        finally:
            self._batches.put(None)
            writer.join()

    def _follow(self) -> None:
        poll = self.config.ingest.follow_poll_seconds
        while not self._stop.is_set():
            self._settle(only_if_failed=True)
            self.wake.clear()
            grew = False
            for s in self.sources:
                assert s.followed is not None  # noqa: S101 - opened
                batch = read_batch(s.followed, self.config, s.summary)
                if batch is not None:
                    self._batches.put((s, batch))
                    grew = True
            rejected = any(s.intake is not None and s.intake.dead_waiting() for s in self.sources)
            if rejected and not self._rejected_queued.is_set():
                self._rejected_queued.set()
                self._batches.put(REJECTED)
            if not grew:
                if not self.ready.is_set() and not self._batches.unfinished_tasks:
                    self.ready.set()
                    self.metrics.ready.set(1)
                    log.info("event=ready sources=%d", len(self.sources))
                self.wake.wait(poll)
            self._retry = RETRY_SECONDS

    def _settle(self, only_if_failed: bool = False) -> None:
        """Wait until every queued batch is stored (or, `only_if_failed`, only when a write
        failed), then raise that failure: reading goes on from the stored checkpoints."""
        if only_if_failed and self._failure is None:
            return
        self._batches.join()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _write(self) -> None:
        """The writer thread: stores queued batches in order; after a failure, drops what
        is queued until the reader has settled (it reads those again)."""
        while (item := self._batches.get()) is not None:
            try:
                if item == REJECTED:
                    self._rejected_queued.clear()
                if self._failure is not None:
                    pass  # read again once the reader has settled
                elif item == REJECTED:
                    self._store_rejected()
                elif isinstance(item, tuple):
                    self._store(*item)
            except BaseException as exc:  # noqa: BLE001 - the reader raises it (_settle)
                self._failure = exc
            finally:
                self._batches.task_done()
        self._batches.task_done()

    def _wait_for_store(self, exc: StoreError) -> None:
        """The store refused a write (a cluster down, a disk full): what was read since the
        last stored checkpoint is read again once it answers. Collectors keep spooling."""
        log.warning(
            "event=store_unavailable error=%s retry_seconds=%.1f",
            clean_error(str(exc)),
            self._retry,
        )
        self._stop.wait(self._retry)
        self._retry = min(self._retry * 2, MAX_RETRY_SECONDS)
        for s in self.sources:
            if s.followed is not None and s.followed.handle is not None:
                s.followed.handle.close()
        self.open()  # from the stored checkpoints (a StoreError here: wait again)

    def pass_once(self) -> bool:
        """One poll of every source, then the door's dead letters; True if anything was read."""
        grew = False
        for s in self.sources:
            grew = self._step(s) or grew
        self._store_rejected()
        return grew

    def _step(self, s: Source) -> bool:
        assert s.followed is not None  # noqa: S101 - opened
        batch = read_batch(s.followed, self.config, s.summary)
        if batch is None:
            return False
        self._store(s, batch)
        return True

    def _store(self, s: Source, batch: Batch) -> None:
        """Store one batch, count it, and let its spool go behind its checkpoint."""
        stored = store_batch(batch, self.store, s.summary, self.on_stored, self.before_store)
        label = s.collector, s.source
        self.metrics.stored.labels(*label).inc(stored)
        self.metrics.skipped.labels(*label).inc(batch.result.skipped_records)
        self.metrics.dead.labels(*label).inc(len(batch.result.dead))
        if s.spool is not None:
            s.spool.prune(batch.checkpoint)
            self._depth(s, s.spool.depth(batch.checkpoint))

    def _depth(self, s: Source, depth: int) -> None:
        self.metrics.spool_depth.labels(s.collector).set(depth)
        warn = self.config.spool.warn_bytes
        if depth > warn and not s.over_warning:
            log.warning(
                "event=spool_behind collector=%s depth_bytes=%d warn_bytes=%d",
                s.collector,
                depth,
                warn,
            )
        elif depth <= warn and s.over_warning:
            log.info("event=spool_caught_up collector=%s depth_bytes=%d", s.collector, depth)
        s.over_warning = depth > warn

    def _store_rejected(self) -> None:
        """Store the door's dead letters; kept on disk until stored (through a store outage
        or a kill: `pipeline/collectors/rejected.py`)."""
        for s in self.sources:
            if s.intake is not None and (dead := s.intake.take_dead()):
                self.store.write_batch([], dead, [])
                s.intake.dead_stored()
                self.metrics.dead.labels(s.collector, s.source).inc(len(dead))
