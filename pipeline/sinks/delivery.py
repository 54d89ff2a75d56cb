"""The delivery worker: moves alerts from the store's outbox to every configured sink.

One loop, the only code that touches the store: for each sink whose turn it is (breaker
not open, no Retry-After pause, a token in its bucket, nothing in flight) it reads the
sink's pending alerts once, settles the folded and the unrouted ones, and sends up to
`concurrency` batches at once on worker threads; when they have all returned, the loop
records every alert's outcome in one store write. A slow or dead receiver holds up only
its own sink.

Guarantees: an alert counts as delivered only after its receiver took it, so a crash at any
point resends at most the batches in flight, with the same idempotency key (the alert id)
and revision. Retryable failures back off exponentially with jitter (at least the
receiver's Retry-After); a refusal (400/401/403 and other 4xx but 408/425/429) goes to the
dead-letter state at once with a log line naming the sink and the fix; so does an alert
that failed `max_attempts` times or for longer than `max_age`.

Over 400 lines on purpose: the worker is one loop over one state (lanes, in-flight
batches, the pending store write); split, its guarantees would be argued across files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pipeline.errors import StoreError
from pipeline.sinks import make_sink
from pipeline.sinks.base import Outgoing, Sink, SinkError
from pipeline.sinks.limits import Breaker, TokenBucket, backoff
from pipeline.sinks.payloads import from_pending, stored_alert
from pipeline.sinks.router import fold_target, refusal, still_covered
from pipeline.sinks.settings import DeliveryConfig, SinkSettings
from pipeline.store.base import DeliveryOutcome, Outbox, PendingDelivery

log = logging.getLogger(__name__)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
ROUNDS = 20  # pending reads per turn while everything read is settled without sending


@dataclass
class Lane:
    """One sink and its pacing state."""

    cfg: SinkSettings
    sink: Sink
    breaker: Breaker
    bucket: TokenBucket | None
    max_attempts: int
    max_age: timedelta
    paused_until: float = 0.0
    flight: list[tuple[Future[dict[str, SinkError]], list[PendingDelivery]]] = field(
        default_factory=list
    )

    @property
    def name(self) -> str:
        return str(self.cfg.name)


@dataclass
class Tally:
    """What a run did, per outcome state (`pending` counts scheduled retries)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        self.counts.update(o.state for o in outcomes)


class Deliverer:
    def __init__(
        self,
        store: Outbox,
        sinks: Sequence[SinkSettings],
        cfg: DeliveryConfig,
        senders: Mapping[str, Sink] | None = None,
        clock: Callable[[], float] = time.time,
        idle: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        """`sinks` are the config's entries (disabled ones are skipped); `senders` may
        replace the registry's sink for a name (tests, embedding). `clock` gives the time
        in seconds; `idle(event, seconds)` waits, returning early (True) once the event is
        set: `event.wait(seconds)` unless given. A test passes both from one virtual
        clock, so pauses, back-offs, cool-downs and deadlines take no real time and come
        out the same on a loaded machine."""
        self.store, self.cfg, self.clock = store, cfg, clock
        self.idle = idle or _event_wait
        self.tally = Tally()
        self.lanes = [
            Lane(
                s,
                (senders or {}).get(s.name) or make_sink(s),
                Breaker(cfg.breaker_failures, cfg.breaker_cooldown.total_seconds()),
                TokenBucket(s.rate_limit.per_second, s.rate_limit.burst, clock())
                if s.rate_limit
                else None,
                s.max_attempts or cfg.max_attempts,
                s.max_age or cfg.max_age,
            )
            for s in sinks
            if s.enabled
        ]
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Read every sink's secrets and open its client; a ConfigError names the sink."""
        started: list[Lane] = []
        try:
            for lane in self.lanes:
                lane.sink.start()
                started.append(lane)
        except BaseException:
            for lane in started:
                lane.sink.close()
            raise
        workers = sum(_concurrency(lane) for lane in self.lanes)
        self._pool = ThreadPoolExecutor(max(1, workers), "secretwatch-sink")

    def close(self) -> None:
        """Record what is in flight (waiting for it), then close every sink."""
        try:
            self.collect(None)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            for lane in self.lanes:
                lane.sink.close()

    # -- loops ---------------------------------------------------------------------------
    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> Tally:
        """Deliver until `stop` is set; `wake` cuts an idle poll short (new alerts)."""
        poll = self.cfg.poll_seconds
        while not stop.is_set():
            try:
                dispatched = self.step()
                if self.in_flight():
                    self.collect(poll)
                elif not dispatched:
                    self.idle(wake or stop, poll)
                    if wake is not None:
                        wake.clear()
            except StoreError as exc:  # a locked or unreachable store: try again later
                log.warning("delivery: %s; trying again in %.1f s", exc, poll)
                self.idle(stop, poll)
        return self.tally

    def drain(self, deadline: float, stop: threading.Event | None = None) -> Tally:
        """Deliver until nothing is left to deliver (dead letters do not count) or until
        `deadline` (a `clock()` value) passes with retries still scheduled."""
        stop = stop or threading.Event()
        while not stop.is_set():
            dispatched = self.step()
            if self.in_flight():
                self.collect(self.cfg.poll_seconds)
            elif not dispatched:
                if self.clock() >= deadline or not self.left():
                    break
                self.idle(stop, self.cfg.poll_seconds)
        return self.tally

    def step(self) -> bool:
        """Give every idle sink whose turn it is one batch; True if anything happened."""
        now = self.clock()
        busy = False
        for lane in self.lanes:
            if not lane.flight and self._ready(lane, now):
                busy |= self._dispatch(lane, now)
        return busy

    def in_flight(self) -> bool:
        return any(lane.flight for lane in self.lanes)

    def collect(self, timeout: float | None) -> int:
        """Wait up to `timeout` (None: as long as it takes) until some sink's requests
        have all returned; record every such sink. Returns how many were recorded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = [
                lane for lane in self.lanes if lane.flight and all(f.done() for f, _ in lane.flight)
            ]
            for lane in done:
                self._settle(lane)
            running = [f for lane in self.lanes for f, _ in lane.flight if not f.done()]
            left = None if deadline is None else deadline - time.monotonic()
            if done or not running or (left is not None and left <= 0):
                return len(done)
            wait(running, timeout=left, return_when=FIRST_COMPLETED)

    def left(self) -> bool:
        """Whether any sink still has alerts to take, now or at a scheduled retry."""
        return any(self.store.pending_deliveries(lane.name, 1, FAR_FUTURE) for lane in self.lanes)

    # -- one batch -----------------------------------------------------------------------
    def _ready(self, lane: Lane, now: float) -> bool:
        if lane.paused_until > now:
            return False
        if lane.bucket is not None and lane.bucket.wait(1, now) > 0:
            return False
        return lane.breaker.state(now) != "open"

    def _dispatch(self, lane: Lane, now_s: float) -> bool:
        """Settle what needs no request, then send one batch; True if anything happened."""
        now = _dt(now_s)
        settled_any = False
        sendable: list[PendingDelivery] = []
        half_open = lane.breaker.state(now_s) == "half-open"
        requests = 1 if half_open else _concurrency(lane)  # a probe is one request
        for _ in range(ROUNDS):
            pending = self.store.pending_deliveries(
                lane.name, max(2 * lane.sink.batch_size * requests, 50), now
            )
            if not pending:
                break
            sendable, settled = self._route(lane, pending, now)
            if settled:
                self.store.record_delivery(lane.name, settled, now)
                self.tally.add(settled)
                settled_any = True
            if sendable:
                break
        batches = _pick(sendable, lane.sink.batch_size, requests)
        if batches and lane.bucket is not None:
            allowed = lane.bucket.take(sum(len(b) for b in batches), now_s)
            batches = _cut(batches, allowed)
        if not batches or self._pool is None:
            return settled_any
        lane.breaker.allow(now_s)  # in half-open state this is the probe
        for batch in batches:
            outgoing = [
                Outgoing(p.alert_id, p.revision, from_pending(p, lane.cfg.evidence_limit))
                for p in batch
            ]
            lane.flight.append((self._pool.submit(lane.sink.send, outgoing), batch))
        return True

    def _route(
        self, lane: Lane, pending: list[PendingDelivery], now: datetime
    ) -> tuple[list[PendingDelivery], list[DeliveryOutcome]]:
        sendable, settled = [], []
        for p in pending:
            p = self._fold(p, now)
            why = None
            if p.folded_into and still_covered(self.store, p):
                why = f"folded into {p.folded_into}: a repeat within delivery.suppression_window"
            elif (refused := refusal(lane.cfg, stored_alert(p.alert))) is not None:
                why = f"not routed here: {refused}"
            if why is None:
                sendable.append(p)
            else:
                settled.append(
                    DeliveryOutcome(p.alert_id, p.revision, "suppressed", p.attempts, error=why)
                )
        return sendable, settled

    def _fold(self, p: PendingDelivery, now: datetime) -> PendingDelivery:
        """Decide once, for every sink, whether the alert repeats an open one."""
        window = self.cfg.suppression_window
        if p.fold_decided or window <= timedelta(0):
            return p
        into = self.store.decide_fold(p.alert_id, fold_target(self.store, p, window), now)
        if into:
            log.info(
                "alert %s folded into open alert %s (a repeat within %s)", p.alert_id, into, window
            )
        return replace(p, folded_into=into, fold_decided=True)

    # -- outcomes ------------------------------------------------------------------------
    def _settle(self, lane: Lane) -> None:
        """Record the outcome of every request of a sink's round in one store write."""
        flight, lane.flight = lane.flight, []
        now_s = self.clock()
        now = _dt(now_s)
        outcomes: list[DeliveryOutcome] = []
        for future, batch in flight:
            outcomes += self._outcomes(lane, future, batch, now, now_s)
        self.store.record_delivery(lane.name, outcomes, now)
        self.tally.add(outcomes)

    def _outcomes(
        self,
        lane: Lane,
        future: Future[dict[str, SinkError]],
        batch: list[PendingDelivery],
        now: datetime,
        now_s: float,
    ) -> list[DeliveryOutcome]:
        try:
            refused = future.result()
            error = None
        except SinkError as exc:
            refused, error = {}, exc
        except Exception as exc:  # a bug in a sink must not stop delivery to the others
            log.exception("sink %r failed unexpectedly", lane.name)
            refused, error = {}, SinkError(f"sink {lane.name!r} failed: {type(exc).__name__}")
        if error is not None:
            outcomes = [self._failed(lane, p, error, now, len(batch)) for p in batch]
            self._pace(lane, error, now_s)
            self._log_failure(lane, error, len(batch), outcomes)
            return outcomes
        lane.breaker.success()
        outcomes = [
            self._failed(lane, p, refused[p.alert_id], now, 1)  # named: no split
            if p.alert_id in refused
            else DeliveryOutcome(p.alert_id, p.revision, "delivered", _attempts(p), status=200)
            for p in batch
        ]
        for status in {e.status for e in refused.values()}:
            ids = {i for i, e in refused.items() if e.status == status}
            same = [o for o in outcomes if o.alert_id in ids]
            self._log_failure(lane, refused[next(iter(ids))], len(same), same)
        return outcomes

    def _failed(
        self, lane: Lane, p: PendingDelivery, error: SinkError, now: datetime, size: int
    ) -> DeliveryOutcome:
        attempts = _attempts(p)
        first = p.first_failed_at if p.state == "pending" and p.first_failed_at else now
        text = str(error)
        if not error.retryable and error.status in (400, 413) and size > 1:
            # The batch was refused as a whole: try its alerts one by one before blaming one.
            state, next_at = "pending", now
        elif not error.retryable:
            state, next_at = "dead", None
        elif attempts >= lane.max_attempts or now - first >= lane.max_age:
            state, next_at = "dead", None
            text = f"gave up after {attempts} attempts over {now - first}: {text}"
        else:
            delay = backoff(
                attempts,
                self.cfg.backoff_base.total_seconds(),
                self.cfg.backoff_max.total_seconds(),
            )
            delay = max(delay, error.retry_after or 0.0)
            state, next_at = "pending", now + timedelta(seconds=delay)
        return DeliveryOutcome(
            p.alert_id, p.revision, state, attempts, next_at, error.status, text, first
        )

    def _pace(self, lane: Lane, error: SinkError, now: float) -> None:
        """A whole-batch failure: pause on Retry-After, trip on refused credentials,
        count towards the breaker otherwise."""
        if error.retry_after is not None or error.status == 429:
            pause = error.retry_after
            if pause is None:
                pause = self.cfg.backoff_base.total_seconds()
            lane.paused_until = now + pause
            log.warning("sink %r: HTTP %s, pausing %.1f s as asked", lane.name, error.status, pause)
            if error.status == 429:
                return
        if error.status in (401, 403):
            lane.breaker.trip(now)
        elif error.retryable and lane.breaker.failure(now):
            log.warning(
                "sink %r: circuit open after %d failed requests in a row; one probe "
                "every %.0f s until it answers",
                lane.name,
                lane.breaker.failed,
                lane.breaker.cooldown,
            )

    def _log_failure(
        self, lane: Lane, error: SinkError, n: int, outcomes: list[DeliveryOutcome]
    ) -> None:
        dead = sum(o.state == "dead" for o in outcomes)
        retry = [o for o in outcomes if o.state == "pending"]
        if not error.retryable and dead:
            log.error(
                "sink %r (%s) refused %d alert(s): %s. Fix: %s. They are dead letters now; "
                "once fixed run `secretwatch alerts redrive --sink %s`",
                lane.name,
                lane.cfg.type,
                dead,
                error,
                error.fix or "see the answer above",
                lane.name,
            )
        elif dead:
            log.error(
                "sink %r (%s): %d alert(s) gave up (max_attempts %d / max_age %s): %s; once "
                "it is reachable run `secretwatch alerts redrive --sink %s`",
                lane.name,
                lane.cfg.type,
                dead,
                lane.max_attempts,
                lane.max_age,
                error,
                lane.name,
            )
        if retry:
            first = min(o.next_attempt_at or FAR_FUTURE for o in retry)
            log.warning(
                "sink %r: %s; %d of %d alert(s) will be retried (attempt %d done, next at %s)",
                lane.name,
                error,
                len(retry),
                n,
                max(o.attempts for o in retry),
                first.isoformat(timespec="seconds"),
            )


def _pick(sendable: list[PendingDelivery], size: int, requests: int) -> list[list[PendingDelivery]]:
    """The next round: up to `requests` batches of `size`; an alert whose batch was refused
    as a whole (400/413) goes alone, to find out which alert the receiver objects to.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class P: last_status: int | None = None; state: str | None = None
    >>> [len(b) for b in _pick([P()] * 7, 3, 2)], [len(b) for b in _pick([P()] * 7, 3, 5)]
    ([3, 3], [3, 3, 1])
    >>> [len(b) for b in _pick([P(), P(400, "pending"), P()], 3, 2)]
    [1]
    """
    alone = [p for p in sendable if p.last_status in (400, 413) and p.state == "pending"]
    if alone:
        return [alone[:1]]
    return [sendable[i : i + size] for i in range(0, min(len(sendable), size * requests), size)]


def _cut(batches: list[list[PendingDelivery]], allowed: int) -> list[list[PendingDelivery]]:
    """The batches cut down to `allowed` alerts in all (a rate limit's tokens)."""
    out = []
    for batch in batches:
        if allowed <= 0:
            break
        out.append(batch[:allowed])
        allowed -= len(out[-1])
    return out


def _concurrency(lane: Lane) -> int:
    return int(getattr(lane.cfg, "concurrency", 1))


def _attempts(p: PendingDelivery) -> int:
    """Attempts at this revision including the current one."""
    return (p.attempts if p.state == "pending" else 0) + 1


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _event_wait(event: threading.Event, seconds: float) -> bool:
    return event.wait(seconds)
