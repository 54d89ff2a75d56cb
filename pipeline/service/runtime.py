"""The runtime of `secretwatch serve`: one process that collects, stores, detects and
delivers, and answers health, metrics and queries over HTTP.

Start order: the store (read-write), a spool per collector, detection (in a child process,
`pipeline.detection.process`, so judging runs beside collecting and storing) and delivery,
the collectors (bound in this thread: a port in use is a `ConfigError` and whatever
started is stopped again), the reader (the one writer of events), then the API. Stop order is the
reverse of the data's path: collectors stop taking input (what is in flight is spooled),
the reader stores what is spooled, detection snapshots and delivery finishes what is in
flight, then the API and the store close. A restart resumes from the spools and the
checkpoints stored with the events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from starlette.applications import Starlette

from pipeline.api.app import Probes, make_app
from pipeline.archive.schedule import ArchiveSchedule, start_schedule
from pipeline.collectors import file as file_collector
from pipeline.collectors import make_collector, spool_format
from pipeline.collectors.base import Collector, Intake
from pipeline.collectors.http import HttpServer
from pipeline.collectors.settings import CollectorSettings, FileCollector
from pipeline.collectors.spool import Spool
from pipeline.config import Config
from pipeline.detection.process import DetectionProcess, Judged
from pipeline.errors import ConfigError
from pipeline.record import EventRow
from pipeline.service.metrics import CountingStore, ServiceMetrics
from pipeline.service.reader import DRAIN_SECONDS, Reader, Source
from pipeline.store import Store, make_store, open_store

log = logging.getLogger(__name__)


class Service:
    """`secretwatch serve` as an object: `start`, then `stop` (tests drive it in-process)."""

    def __init__(self, config: Config, store_path: Path | str | None = None) -> None:
        self.config = config
        self.store_path = store_path
        self.store: Store | None = None
        self.collectors: list[Collector] = []
        self.intakes: list[Intake] = []
        self.spools: list[Spool] = []
        self.sources: list[Source] = []
        self.wake = threading.Event()
        self.metrics = ServiceMetrics(self.intakes)
        self.detection: DetectionProcess | None = None
        self.reader: Reader | None = None
        self.api: HttpServer | None = None
        self.archiver: ArchiveSchedule | None = None  # `retention.archive`: on a schedule
        self._started: list[Collector] = []

    def start(self) -> None:
        """Start everything, or raise with nothing left running."""
        try:
            self._start()
        except BaseException:
            self.stop(drain_seconds=0)
            raise

    def _start(self) -> None:
        cfg = self.config
        self.store = open_store(cfg, self.store_path, read_only=False)
        for settings in cfg.collectors:
            self._build(settings)
        self.detection = DetectionProcess(self._detection_store, cfg.detection(), self._on_judged)
        self.detection.own()
        if cfg.sinks:
            from pipeline.sinks.embed import start_delivery_thread

            self.detection.delivery = start_delivery_thread(self._delivery_store, cfg)
        for collector in self.collectors:
            collector.start()
            self._started.append(collector)
        before = self.detection.anchor if self.detection is not None else None
        self.reader = Reader(
            self.store, cfg, self.sources, self.metrics, self.wake, self._on_stored, before
        )
        self.reader.open()
        self.reader.start()
        self.archiver = start_schedule(cfg, self.store_path)
        if cfg.api is not None:
            self.api = HttpServer("api", cfg.api.host, cfg.api.port, self._app())
            self.api.start()
        log.info(
            "event=started collectors=%d sinks=%d api=%s",
            len(self.collectors),
            len(cfg.sinks),
            self.api_address or "off",
        )

    def _build(self, settings: CollectorSettings) -> None:
        """The collector `settings` describe, with its spool and the reader's source."""
        if isinstance(settings, FileCollector):
            follower = file_collector.make(settings)
            self.collectors.append(follower)
            for path in follower.paths:
                self.sources.append(Source(follower.name, path, settings.format))
            return
        label = settings.label
        folder = self.config.spool.path / label
        try:
            spool = Spool(folder, self.config.spool.segment_bytes)
        except OSError as exc:
            raise ConfigError(
                f"collector {label}: cannot open its spool {folder}: {exc.strerror or exc}"
            ) from None
        self.spools.append(spool)
        intake = Intake(label, spool, self.wake.set)
        self.intakes.append(intake)
        self.collectors.append(make_collector(settings, intake))
        self.sources.append(Source(label, spool.path, spool_format(settings), spool, intake))

    def _detection_store(self) -> Store:
        """The store the detection process's calls are answered with (its own connection)."""
        return open_store(self.config, self.store_path, read_only=False)

    def _delivery_store(self) -> Store:
        store = make_store(self.config, self.store_path, read_only=False)
        return cast(Store, CountingStore(store, self.metrics))

    def _app(self) -> Starlette:
        assert self.config.api is not None  # noqa: S101 - only with an api section
        token = self.config.api.token()
        probes = Probes(self.not_listening, self.ready, self.metrics.render)
        from pipeline.api.queries import query_routes

        routes = query_routes(self._open_reader, token)
        return make_app(probes, token, routes)

    def _open_reader(self) -> Store:
        """A store for one API request (its own connection; closed by the handler)."""
        return open_store(self.config, self.store_path, read_only=False)

    def _on_stored(self, rows: list[EventRow]) -> None:
        now_us = time.time_ns() // 1000
        self.metrics.observe_delays([r.ts_us for r in rows], now_us)
        if self.detection is not None:
            self.detection.feed(rows)

    def _on_judged(self, judged: Judged) -> None:
        """The detection process has judged a batch (called from its results thread)."""
        for alert in judged.alerts:
            log.warning(
                "event=alert id=%s severity=%s identity=%s",
                alert.id,
                alert.severity,
                alert.identity,
            )
        self.metrics.alerts.inc(len(judged.alerts))
        if judged.newest_us is not None:
            lag = (time.time_ns() // 1000 - judged.newest_us) / 1e6
            self.metrics.detection_lag.set(max(0.0, lag))

    # -- probes -------------------------------------------------------------------------
    def not_listening(self) -> list[str]:
        return [c.name for c in self.collectors if not c.listening]

    def ready(self) -> bool:
        return self.reader is not None and self.reader.ready.is_set()

    @property
    def alive(self) -> bool:
        """False once the reader died (the service should exit non-zero)."""
        return self.reader is not None and self.reader.alive

    @property
    def api_address(self) -> str | None:
        return f"http://{self.api.host}:{self.api.port}" if self.api else None

    def addresses(self) -> list[tuple[str, str]]:
        """(collector, where it listens or what it follows), for the startup message."""
        out: list[tuple[str, str]] = []
        for collector, settings in zip(self.collectors, self.config.collectors, strict=True):
            if isinstance(settings, FileCollector):
                out.append((collector.name, "follows " + ", ".join(settings.paths)))
            else:
                where = getattr(collector, "address", None) or getattr(settings, "listen", None)
                out.append((collector.name, str(where or getattr(settings, "queue_url", ""))))
        return out

    # -- stopping -------------------------------------------------------------------------
    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> list[BaseException]:
        """Stop in the data's order (see the module docstring); the errors met on the way."""
        errors: list[BaseException] = []
        if self.archiver is not None:
            _try(errors, self.archiver.stop)
        for collector in reversed(self._started):
            _try(errors, collector.stop)
        self._started.clear()
        if self.reader is not None:
            _try(errors, lambda: self.reader.stop(drain_seconds) if self.reader else None)
            errors += self.reader.errors
        if self.detection is not None:  # its last snapshot, then delivery's in-flight work
            errors += self.detection.close()
            self.detection = None
        if self.api is not None:
            _try(errors, self.api.stop)
        for spool in self.spools:
            _try(errors, spool.close)
        self.spools.clear()
        if self.store is not None:
            _try(errors, self.store.close)
            self.store = None
        for exc in errors:
            log.error("event=stop_error error=%s", type(exc).__name__)
        log.info("event=stopped")
        return errors


def _try(errors: list[BaseException], work: Callable[[], object]) -> None:
    try:
        work()
    except Exception as exc:  # stopping goes on; the caller reports them
        errors.append(exc)
        log.exception("event=stop_failed")
