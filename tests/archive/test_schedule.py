"""`serve` archives on its schedule: at start and every `schedule_minutes`, on its own
connection beside the reader, and stops with the service."""

from __future__ import annotations

from pathlib import Path

import yaml
from archive_helpers import DAY0, day_rows, fill, ids, setup
from waiting import wait_until

from pipeline.archive.schedule import ArchiveSchedule, start_schedule
from pipeline.archive.settings import Retention
from pipeline.archive.verify import verify
from pipeline.config import load_config
from pipeline.service.runtime import Service
from pipeline.store.duckdb import DuckDBStore


def service_config(tmp_path: Path) -> Path:
    config, _, _, _ = setup(tmp_path)
    data = yaml.safe_load(config.read_text())
    log = tmp_path / "vault.log"
    log.write_text("")
    data |= {
        "collectors": [{"type": "file", "paths": [str(log)], "format": "vault"}],
        "spool": {"path": str(tmp_path / "spool")},
        "ingest": {"follow_poll_seconds": 0.1},
        "sinks": [],
    }
    config.write_text(yaml.safe_dump(data))
    return config


def test_serve_archives_old_days_while_the_reader_runs(tmp_path: Path) -> None:
    config = service_config(tmp_path)
    store, folder = tmp_path / "store.duckdb", tmp_path / "archive"
    total = fill(store, days=3, per_day=20)
    service = Service(load_config(config))
    service.start()
    try:
        assert service.archiver is not None
        archiver = service.archiver
        wait_until(lambda: archiver.runs >= 1, timeout=30, what="the first scheduled archive")
        assert archiver.last is not None and archiver.last.dropped == total
    finally:
        assert service.stop() == []
    assert not archiver._thread.is_alive()
    hot, cold = ids(store, folder)
    assert not hot and sum(cold.values()) == total
    assert not verify(folder).problems


def test_the_schedule_runs_again_after_its_interval(tmp_path: Path) -> None:
    config, store, folder, _ = setup(tmp_path)
    fill(store, days=1, per_day=5)
    schedule = ArchiveSchedule(load_config(config), None, interval=0.05)
    schedule.start()
    try:
        wait_until(lambda: schedule.runs >= 1, timeout=30)
        with DuckDBStore(store) as s:  # late events arrive while it runs
            s.write_batch(day_rows(DAY0, "gcp", 4))
        wait_until(lambda: sum(ids(store, folder)[1].values()) == 19, timeout=30)
    finally:
        schedule.stop()
    assert not schedule._thread.is_alive()
    assert not ids(store, folder)[0]


def test_without_an_archive_section_there_is_no_schedule(tmp_path: Path) -> None:
    config, _, _, _ = setup(tmp_path)
    cfg = load_config(config)
    assert start_schedule(cfg.model_copy(update={"retention": Retention()}), None) is None


def test_a_failing_run_is_logged_and_the_schedule_goes_on(tmp_path: Path) -> None:
    config, store, folder, key = setup(tmp_path)
    fill(store, days=1, per_day=5)
    key.write_text("not a key")
    schedule = ArchiveSchedule(load_config(config), None, interval=0.05)
    assert schedule.run_once() is None and schedule.runs == 0
