"""Pacing for one sink: exponential backoff with jitter, a token bucket, a circuit breaker.

Pure state machines over a clock passed in (seconds, monotonic or not), so the delivery
worker's policy can be tested without waiting.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def backoff(attempt: int, base: float, cap: float, rand: float | None = None) -> float:
    """Seconds before retry number `attempt` (1 = first retry): base * 2^(attempt-1) up to
    `cap`, times a jitter in [0.5, 1) so that many alerts failing together do not retry
    together ("equal jitter").

    >>> [backoff(n, 1.0, 60.0, rand=0.0) for n in (1, 2, 3, 8, 20)]
    [0.5, 1.0, 2.0, 30.0, 30.0]
    """
    jitter = random.random() if rand is None else rand  # noqa: S311 - timing, not secrecy
    growth: int = 2 ** min(attempt - 1, 62)
    return min(cap, base * growth) * (0.5 + jitter / 2)


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; one token per alert.

    >>> bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    >>> bucket.take(5, now=0.0), bucket.take(1, now=0.0), bucket.take(5, now=1.0)
    (3, 0, 2)
    >>> bucket.wait(1, now=1.0)
    0.5
    """

    rate: float
    burst: int
    now: float
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.now) * self.rate)
        self.now = max(self.now, now)

    def take(self, wanted: int, now: float) -> int:
        """Take up to `wanted` whole tokens; return how many were granted."""
        self._refill(now)
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted

    def wait(self, wanted: int, now: float) -> float:
        """Seconds until `wanted` (at most `burst`) tokens are there."""
        self._refill(now)
        missing = min(wanted, self.burst) - self.tokens
        return max(0.0, missing / self.rate)


@dataclass
class Breaker:
    """Closed, open after `failures` failed requests in a row (or a `trip`), half-open
    after `cooldown` seconds: one probe request; its success closes, its failure reopens.

    The caller sends one request at a time per sink, so half-open admits exactly one.

    >>> b = Breaker(failures=2, cooldown=10.0)
    >>> b.failure(0.0), b.failure(1.0), b.allow(5.0), b.allow(11.0)
    (False, True, False, True)
    >>> b.failure(11.5), b.allow(12.0), b.allow(21.6)
    (True, False, True)
    >>> b.success(); b.state(22.0)
    'closed'
    """

    failures: int
    cooldown: float
    failed: int = 0
    opened_at: float | None = None
    probing: bool = False

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if now - self.opened_at >= self.cooldown else "open"

    def allow(self, now: float) -> bool:
        """May a request go now? Half-open: yes, as the probe whose outcome decides."""
        state = self.state(now)
        if state == "half-open":
            self.probing = True
        return state != "open"

    def success(self) -> None:
        self.failed, self.opened_at, self.probing = 0, None, False

    def failure(self, now: float) -> bool:
        """Count a failed request; True if this opened (or reopened) the breaker."""
        self.failed += 1
        if self.probing or (self.opened_at is None and self.failed >= self.failures):
            self.trip(now)
            return True
        return False

    def trip(self, now: float) -> None:
        """Open now, whatever the count (a receiver that refuses our credentials)."""
        self.opened_at, self.probing = now, False
