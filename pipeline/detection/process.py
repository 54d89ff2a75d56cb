"""Live detection in a process of its own, for `secretwatch serve`: judging takes most of a
core at full load, and in the service's process it would share one interpreter (one GIL)
with the collectors and the reader that stores events. In a child it runs beside them.

The child is an `EmbeddedDetection`, the same runtime `ingest --follow --detect` runs in a
thread. Only this process may write an embedded store, so the child's store is a proxy:
each store call it makes travels over a pipe and a thread here answers it with a store
connection of its own. The rules of live detection are therefore unchanged: alerts reach
the outbox in the same call that moves the watermark past their evidence, and after a
crash or a kill the next start judges again what was stored but not learned from. Should
this process die, the child's next read or store call ends it: it never writes alone.

Flow: the reader hands over each stored batch (`feed`); the pipe holds about one batch,
so when judging falls behind the reader waits and the collectors' spools grow, which
their metrics show. The child reports the alerts it raised on a second pipe, which a
thread here turns into log lines, metrics and a wake-up of the delivery thread.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, cast

from detectors.clock import BatchClock
from detectors.settings import DetectorsConfig
from pipeline.detection import checkpoint as cp
from pipeline.detection.embedded import EMBEDDED
from pipeline.errors import StoreError
from pipeline.record import EventRow

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from pipeline.detection.roles import DetectionStore
    from pipeline.sinks.embed import DeliveryHandle
    from pipeline.store.base import Store

log = logging.getLogger(__name__)

START_SECONDS = 300.0  # the child's start: imports, then loading every baseline
STOP_SECONDS = 60.0  # its last snapshot at shutdown
BUSY_POLL_SECONDS = 0.05  # while judging in the background: how often to look if it is done


@dataclass(frozen=True, slots=True)
class Raised:
    """What the child tells of one alert it raised or grew (no evidence, no values)."""

    id: str
    severity: str
    identity: str


@dataclass(frozen=True, slots=True)
class Judged:
    """The child's report after one batch."""

    alerts: list[Raised]
    late_count: int
    newest_us: int | None


class DetectionProcess:
    """The parent's handle on the child: `own` starts it, `feed` hands it stored events,
    `close` lets it take its last snapshot and stop."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        cfg: DetectorsConfig,
        on_judged: Callable[[Judged], None] | None = None,
    ) -> None:
        self.open_store = open_store
        self.cfg = cfg
        self.on_judged = on_judged
        self.delivery: DeliveryHandle | None = None  # set when sinks are delivered here
        self.late_count = 0
        self.errors: list[BaseException] = []
        self._child: BaseProcess | None = None
        self._feed: Connection | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._anchored = False  # the store says where live detection begins (`anchor`)

    def own(self) -> None:
        """Start the child and wait until it has loaded the detection state (an error
        there, such as baselines of another time layout, is raised here)."""
        ctx = mp.get_context("spawn")  # a clean interpreter: no threads or locks forked
        feed_child, self._feed = ctx.Pipe(duplex=False)
        results, results_child = ctx.Pipe(duplex=False)
        calls, calls_child = ctx.Pipe(duplex=True)
        self._child = ctx.Process(
            target=_child_main,
            args=(self.cfg.model_dump(mode="json"), feed_child, results_child, calls_child),
            name="secretwatch-detection",
            daemon=True,
        )
        self._child.start()
        for end in (feed_child, results_child, calls_child):
            end.close()  # the child's ends: so its death reads as EOF here, and ours there
        self._serve_thread(calls)
        if not results.poll(START_SECONDS):
            self._kill()
            raise StoreError(f"live detection did not start within {START_SECONDS:.0f} s")
        first = results.recv()
        if isinstance(first, BaseException):
            self._kill()
            raise first
        self._anchored = bool(first[1])
        thread = threading.Thread(
            target=self._read_results, args=(results,), name="detection-results", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def anchor(self, rows: list[EventRow]) -> None:
        """Before the reader stores `rows` (`before_store`): when the child started with
        nothing to judge again from (a new store), note where live detection begins, as
        the child would once it judged them; killed before that, the next start would
        not know they were owed. Once per child; the child keeps the earliest start."""
        if self._anchored or not rows:
            return
        store = self.open_store()
        try:
            clock = BatchClock(self.cfg.batch_minutes * 60_000_000, 0)
            cp.save_origin(store, clock.align(min(r.ts_us for r in rows)), EMBEDDED)
        finally:
            store.close()
        self._anchored = True

    def feed(self, rows: list[EventRow]) -> None:
        """Hand stored events to the child (waits while it still holds the batch before).

        A child that stopped (its store call failed: a cluster away, say) is started
        again first, and judges again from its stored watermark what was stored since,
        these rows included, as after a crash. If that fails, StoreError: the reader
        waits for the store and tries again."""
        if self._feed is None or self._child is None or not self._child.is_alive():
            if self._child is not None:
                log.warning("event=detection_restart reason=%s", self._death("stopped"))
            self._kill()
            self.own()
        assert self._feed is not None  # noqa: S101 - own() opened it
        try:
            self._feed.send(("feed", [tuple(r) for r in rows]))
        except OSError:
            raise StoreError(self._death("live detection has stopped")) from None

    def snapshot(self) -> None:
        if self._feed is not None:
            self._feed.send(("snapshot", None))

    def close(self) -> list[BaseException]:
        """Let the child take its last snapshot and stop, then stop delivering; the
        errors met on the way."""
        if self._feed is not None and self._child is not None and self._child.is_alive():
            try:
                self._feed.send(("stop", None))
            except OSError:
                pass
            self._child.join(STOP_SECONDS)
        self._kill()
        self._stopped.set()
        for thread in self._threads:
            thread.join(10)
        if self.delivery is not None:
            self.delivery.stop()
            self.errors += self.delivery.errors
        return list(self.errors)

    def _kill(self) -> None:
        if self._child is not None and self._child.is_alive():
            self._child.kill()
            self._child.join(10)
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def _death(self, what: str) -> str:
        code = self._child.exitcode if self._child is not None else None
        cause = f"; {type(self.errors[-1]).__name__}" if self.errors else ""
        return f"{what} (exit code {code}){cause}"

    def _serve_thread(self, calls: Connection) -> None:
        thread = threading.Thread(
            target=self._serve, args=(calls,), name="detection-store", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _serve(self, calls: Connection) -> None:
        """Answer the child's store calls with a connection of this process's own."""
        store = self.open_store()
        try:
            while True:
                try:
                    name, args, kwargs = calls.recv()
                except (EOFError, OSError):
                    return  # the child has gone
                try:
                    answer: Any = ("ok", getattr(store, name)(*args, **kwargs))
                except Exception as exc:  # the child raises it as its own
                    answer = ("error", exc)
                try:
                    calls.send(answer)
                except (OSError, ValueError):
                    return
        finally:
            store.close()

    def _read_results(self, results: Connection) -> None:
        while not self._stopped.is_set():
            try:
                message = results.recv()
            except (EOFError, OSError):
                return
            if isinstance(message, BaseException):
                self.errors.append(message)
                log.error("event=detection_failed error=%s", type(message).__name__)
                return
            judged = cast(Judged, message)
            self.late_count = judged.late_count
            if judged.alerts and self.delivery is not None:
                self.delivery.wake()  # deliver now, not at the next poll
            if self.on_judged is not None:
                self.on_judged(judged)


class _StoreProxy:
    """The child's store: every call is answered by the parent's store."""

    def __init__(self, calls: Connection) -> None:
        self._calls = calls

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.send((name, args, kwargs))
            status, value = self._calls.recv()
            if status == "error":
                raise value
            return value

        return call


def _child_main(
    cfg: dict[str, Any], feed: Connection, results: Connection, calls: Connection
) -> None:
    """The child: load the state, then judge each batch until told to stop or orphaned."""
    import signal

    from pipeline.detection.embedded import EmbeddedDetection

    # Ctrl-C and systemd's SIGTERM reach the whole process group: the parent stops the
    # child through the pipe, after its last snapshot, and a dead parent ends it by EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    close_in_forks(feed, results, calls)
    store = cast("DetectionStore", _StoreProxy(calls))
    try:
        detection = EmbeddedDetection(store, DetectorsConfig.model_validate(cfg))
        detection.live.background = True  # a large open batch does not hold up new events
        detection.own()
        gc.freeze()  # the loaded state: as `serve` does after its start (pipeline/cli/serve.py)
    except BaseException as exc:
        results.send(_portable(exc))
        return
    results.send(("ready", detection.live.start is not None))
    try:
        while True:
            try:
                if detection.busy and not feed.poll(BUSY_POLL_SECONDS):
                    kind, payload = "feed", []  # nothing new: raise what the background found
                else:
                    kind, payload = feed.recv()
            except (EOFError, OSError):
                return  # the parent is gone: stop without writing anything more
            if kind == "stop":
                detection.snapshot()
                return
            if kind == "snapshot":
                detection.snapshot()
                continue
            rows = [EventRow._make(r) for r in payload]
            alerts = detection.feed(rows)
            raised = [Raised(a.id, a.severity, a.identity) for a in alerts]
            newest = max((r.ts_us for r in rows), default=None)
            if rows or raised:
                results.send(Judged(raised, detection.late_count, newest))
    except (EOFError, OSError):
        return  # the parent died mid-call
    except BaseException as exc:
        try:
            results.send(_portable(exc))
        except OSError:
            pass
        raise


def close_in_forks(*pipes: Connection) -> None:
    """A fork of this process (a whole judging, `background.py`) closes its copies of the
    pipes to the service: were they open there, the service would see this process die
    only once the fork ended, and meanwhile its store and result threads would wait."""

    def close() -> None:
        for pipe in pipes:
            pipe.close()

    os.register_at_fork(after_in_child=close)


def _portable(exc: BaseException) -> BaseException:
    """The exception as the parent can unpickle it (a plain StoreError if need be)."""
    try:
        import pickle

        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, round-tripped
        return exc
    except Exception:
        return StoreError(f"{type(exc).__name__}: {exc}")
