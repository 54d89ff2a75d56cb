"""The service's reader through a store outage: writes refused for a while, then every
spooled event stored once, and the door's dead letters kept until they are stored."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servehelp import vault_pairs
from waiting import wait_until

from pipeline.collectors.base import Intake
from pipeline.collectors.spool import Spool
from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.service.metrics import ServiceMetrics
from pipeline.service.reader import Reader, Source
from pipeline.store.duckdb import DuckDBStore


class Outage:
    """A real DuckDB store whose writes are refused while `down` is set (a cluster away)."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.down = threading.Event()
        self.refused = 0

    def write_batch(
        self, rows: list[Any], dead: Sequence[Any] = (), checkpoints: Sequence[Any] = ()
    ) -> int:
        if self.down.is_set():
            self.refused += 1
            raise StoreError("store unavailable: connection refused")
        return self.store.write_batch(rows, dead, checkpoints)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_store_outage_delays_storing_and_loses_nothing(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.open()
    spool = Spool(tmp_path / "spool")
    intake = Intake("vault", spool)
    outage = Outage(store)
    metrics = ServiceMetrics([intake])
    cfg = Config.model_validate({"ingest": {"follow_poll_seconds": 0.05}})
    source = Source("vault", spool.path, "vault", spool, intake)
    reader = Reader(outage, cfg, [source], metrics, threading.Event())  # type: ignore[arg-type]
    reader.open()
    reader.start()
    try:
        intake.accept(vault_pairs(100, tag=1))
        stored = metrics.stored.labels("vault", "vault")
        wait_until(lambda: stored._value.get() == 100)
        outage.down.set()
        intake.accept(vault_pairs(200, tag=2))
        intake.reject("127.0.0.1:1", "line longer than 1,024 bytes", b'{"x":1}', "vault")
        wait_until(lambda: outage.refused >= 2)  # retried, not given up
        assert reader.alive
        assert stored._value.get() == 100
        outage.down.clear()
        wait_until(lambda: stored._value.get() == 300)
        wait_until(lambda: metrics.dead.labels("vault", "vault")._value.get() == 1)
    finally:
        reader.stop(5)
    assert reader.errors == []
    assert store.count() == 300
    assert len(store.dead_letters()) == 1
    store.close()
    spool.close()


def test_a_segment_rotated_before_any_checkpoint_is_read_first(tmp_path: Path) -> None:
    """The spool rotated while nothing had been stored yet (the store refused every write
    of a first run, then a restart): the reader starts at the rotated segment, not at
    `current.jsonl`, which held only what came after it."""
    spool = Spool(tmp_path / "spool", segment_bytes=64 << 10)
    intake = Intake("vault", spool)
    for tag in range(4):
        intake.accept(vault_pairs(50, tag=tag))
    assert len(spool.segments()) == 2  # a rotated segment, then current.jsonl
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.open()
    metrics = ServiceMetrics([intake])
    cfg = Config.model_validate({"ingest": {"follow_poll_seconds": 0.05}})
    reader = Reader(
        store,
        cfg,
        [Source("vault", spool.path, "vault", spool, intake)],
        metrics,
        threading.Event(),
    )
    reader.open()

    def stored_all() -> bool:  # the reader thread's loop, polled here
        reader.pass_once()
        return store.count() == 200

    wait_until(stored_all, timeout=30, what="every event stored")
    assert store.count() == 200
    assert len(spool.segments()) == 1  # the read segment is pruned
    reader.stop(0)
    store.close()
    spool.close()


class Held:
    """A real DuckDB store whose first write of events waits until `go` is set."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.holding = threading.Event()
        self.go = threading.Event()
        self.written: list[int] = []

    def write_batch(
        self, rows: list[Any], dead: Sequence[Any] = (), checkpoints: Sequence[Any] = ()
    ) -> int:
        if rows and not self.written:
            self.holding.set()
            assert self.go.wait(60)
        self.written.append(len(rows))
        return self.store.write_batch(rows, dead, checkpoints)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_the_next_batch_is_read_while_the_one_before_is_stored(tmp_path: Path) -> None:
    """The reader parses on while the writer thread stores (a commit waits on the disk, and
    the store works without the interpreter lock); batches are stored in order, once."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    store.open()
    spool = Spool(tmp_path / "spool")
    intake = Intake("vault", spool)
    held = Held(store)
    metrics = ServiceMetrics([intake])
    cfg = Config.model_validate({"ingest": {"follow_poll_seconds": 0.05}})
    source = Source("vault", spool.path, "vault", spool, intake)
    reader = Reader(held, cfg, [source], metrics, threading.Event())  # type: ignore[arg-type]
    reader.open()
    reader.start()
    try:
        intake.accept(vault_pairs(100, tag=1))
        wait_until(held.holding.is_set)
        intake.accept(vault_pairs(50, tag=2))
        wait_until(lambda: source.summary.events == 150)  # read while the first is held
        assert held.written == []
        held.go.set()
        stored = metrics.stored.labels("vault", "vault")
        wait_until(lambda: stored._value.get() == 150)
    finally:
        held.go.set()
        reader.stop(5)
    assert reader.errors == []
    assert [n for n in held.written if n] == [100, 50]
    assert store.count() == 150
    store.close()
    spool.close()
