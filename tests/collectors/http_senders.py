"""What the HTTP collector tests share: a collector running on a free port over a real
spool, and the events a spool (or a sample file) makes once ingested into a real store."""

from __future__ import annotations

import atexit
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from pipeline.collectors.base import Intake
from pipeline.collectors.receiving import HttpCollector
from pipeline.collectors.spool import Spool
from pipeline.ingest import Ingestor, IngestSummary
from pipeline.store.duckdb import DuckDBStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@functools.cache
def client() -> httpx.Client:
    """One HTTP client for every test (making one loads CA certificates: ~0.1 s each)."""
    made = httpx.Client(timeout=30)
    atexit.register(made.close)
    return made


@dataclass
class Running:
    collector: HttpCollector
    intake: Intake
    spool: Spool

    @property
    def url(self) -> str:
        return self.collector.url

    def spooled(self) -> list[bytes]:
        return self.spool.path.read_bytes().splitlines()


@contextmanager
def running(make: Callable[..., Any], settings: Any, folder: Path) -> Iterator[Running]:
    """`make(settings, intake)` (listening on port 0: a free one) started over a spool in
    `folder`, stopped after."""
    spool = Spool(folder / "spool")
    intake = Intake(settings.label, spool)
    collector = make(settings, intake)
    collector.start()
    try:
        assert collector.listening and collector.port != 0
        yield Running(collector, intake, spool)
    finally:
        collector.stop()
        spool.close()
    assert not collector.listening


@dataclass
class Stored:
    summary: IngestSummary
    events: pd.DataFrame
    dead: pd.DataFrame


def ingest(paths: list[Path], fmt: str | None, store_path: Path) -> Stored:
    """What `secretwatch ingest --format fmt paths` stores."""
    with DuckDBStore(store_path) as store:
        summary = Ingestor(store, fmt).ingest([str(p) for p in paths])
        return Stored(summary, store.events(), store.dead_letters())
