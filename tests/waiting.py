"""Waiting on a condition (never on a fixed sleep) and reading a spool back: shared by the
collector and service tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipeline.collectors.spool import Spool


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `check` until it holds; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.02)


def spooled(spool: Spool) -> list[bytes]:
    """Every line in the spool, oldest segment first."""
    return [line for p in spool.segments() for line in p.read_bytes().splitlines()]
