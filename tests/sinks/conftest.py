"""Fixtures for sink tests: a DuckDB store and real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from receivers import Contract, Receiver

from pipeline.store.duckdb import DuckDBStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    opened = DuckDBStore(tmp_path / "store.duckdb")
    opened.open()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """A factory of receivers, all shut down after the test."""
    made: list[Receiver] = []

    def make(
        contract: Contract,
        delay: float = 0.0,
        slow_answer: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> Receiver:
        rx = Receiver(contract, delay, slow_answer, clock)
        made.append(rx)
        return rx

    yield make
    for rx in made:
        rx.close()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets the test sinks name, in the environment as in production."""
    from outbox import SECRET

    for name, value in {
        "TEST_WEBHOOK_SECRET": SECRET,
        "TEST_HEC_TOKEN": "11111111-2222-3333-4444-555555555555",
        "TEST_ES_API_KEY": "ZXMta2V5LWlkOmVzLWtleS1zZWNyZXQ=",
        "TEST_AZURE_SECRET": "azure-client-secret-value",
        "TEST_DD_API_KEY": "0123456789abcdef0123456789abcdef",
        "TEST_PD_ROUTING_KEY": "R0123456789abcdef0123456789abcde",
    }.items():
        monkeypatch.setenv(name, value)
