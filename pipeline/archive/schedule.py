"""`serve` archives on a schedule: a thread that runs `secretwatch archive` at start and
then every `retention.archive.schedule_minutes`, on a store connection of its own.

The service's reader stays the only writer of new events; the archive only deletes whole
old days, each in one transaction that checks its count, so the two never touch the same
rows (DuckDB opens a second connection on the same file in-process onto the same database,
as the delivery thread and the API do). A failed run is logged and retried at the next
tick; stopping waits for the day in progress, not for the whole run.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pipeline.archive.archiver import ArchiveRun
from pipeline.archive.run import run_archive
from pipeline.config import Config
from pipeline.errors import SecretwatchError
from pipeline.errortext import clean_error
from pipeline.store import open_store

log = logging.getLogger(__name__)


class ArchiveSchedule:
    """Archive now and every `interval` seconds until `stop`."""

    def __init__(self, config: Config, store_path: Path | str | None, interval: float) -> None:
        self.config = config
        self.store_path = store_path
        self.interval = interval
        self.runs = 0  # finished runs, for tests and metrics
        self.last: ArchiveRun | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="archive", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)

    def run_once(self) -> ArchiveRun | None:
        try:
            store = open_store(self.config, self.store_path, read_only=False)
            try:
                run = run_archive(
                    self.config.retention, self.config.store.type, store, stopping=self._stop.is_set
                )
            finally:
                store.close()
        except (SecretwatchError, OSError) as exc:
            log.error("event=archive_failed error=%s", clean_error(str(exc)))
            return None
        self.runs += 1
        self.last = run
        log.info(
            "event=archived days=%d events=%d dropped=%d files=%d",
            run.days,
            run.events,
            run.dropped,
            run.files,
        )
        return run


def start_schedule(config: Config, store_path: Path | str | None) -> ArchiveSchedule | None:
    """The running schedule when `retention.archive` is configured, else None."""
    settings = config.retention.archive
    if settings is None:
        return None
    schedule = ArchiveSchedule(config, store_path, settings.schedule_minutes * 60.0)
    schedule.start()
    return schedule
