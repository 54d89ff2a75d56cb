"""`secretwatch run`: one member of the distributed flow, its two stages in two processes.

normalize (raw topics, group `<group_id>-normalize`) runs in a child process and detect
(events topic, group `<group_id>-detect`) in a thread of the member's own process: parsing
and producing on one side, storing and judging on the other, each with an interpreter (and
GIL) of its own, so a member uses two cores. Each stage has its own KafkaConsumer, commits
its own offsets by its own rule (see `pipeline/bus/normalize_stage.py` and
`pipeline/bus/judge_stage.py`), and neither waits for the other: a slow store holds back
only the detect stage. Only the detect stage touches the store.

SIGTERM / SIGINT set a stop flag: each stage finishes its batch, the detect stage
snapshots, both commit and close, and the process exits 0. A stage that fails stops the
other and the process exits 1; whatever was not committed is read again on restart. The
child dies with its member: if the member is killed (even with SIGKILL), the kernel sends
the child SIGTERM and it stops like on a requested stop.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson
from rich.console import Console
from rich.text import Text

from pipeline.bus import kafka
from pipeline.bus.judge_stage import JudgeStage
from pipeline.bus.normalize_stage import NormalizeStage
from pipeline.config import Config, KafkaConfig
from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.store.base import Store
from pipeline.terminal import inert, log_to_stderr

if TYPE_CHECKING:
    from detectors.alert import Alert

log = logging.getLogger(__name__)
REPORT_SECONDS = 10.0


def default_member() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Delays:
    """Produce-to-stored and produce-to-alert delays, from the Kafka timestamps events carry
    (the time their raw record was produced); optionally one JSON line per batch to a file.

    An alert may fire batches after its evidence was stored (when the clock completes its
    window), so with a metrics file the produce times of the last REMEMBERED events are
    kept to measure it."""

    REMEMBERED = 500_000

    def __init__(self, metrics: Path | None) -> None:
        self.stored: list[float] = []  # since the last report, in ms
        self.out: IO[bytes] | None = metrics.open("ab") if metrics else None
        self.produced: dict[str, int] = {}  # event id -> produce time (ms), oldest first

    def batch(self, rows: list[EventRow], stamps: list[int], alerts: list[Alert]) -> None:
        """One stored batch: its events, their records' Kafka timestamps, the alerts raised."""
        if not rows and not alerts:
            return
        now = time.time() * 1000
        delays = [now - stamp for stamp in stamps]
        self.stored.extend(delays)
        if self.out is None:
            return
        line: dict[str, object] = {"t": now, "stored": len(rows)}
        if delays:
            line["delay_ms"] = [round(d, 1) for d in delays]
        produced = self.produced
        produced.update((row.event_id, stamp) for row, stamp in zip(rows, stamps, strict=True))
        for old in list(itertools.islice(produced, max(0, len(produced) - self.REMEMBERED))):
            del produced[old]
        if alerts:
            line["alerts"] = [
                {"id": a.id, "identity": a.identity, "delay_ms": _alert_delay(a, produced, now)}
                for a in alerts
            ]
        self.out.write(orjson.dumps(line) + b"\n")
        self.out.flush()

    def report(self) -> str:
        got, self.stored = sorted(self.stored), []
        if not got:
            return "no events"
        p50, p99 = got[len(got) // 2], got[min(len(got) - 1, int(len(got) * 0.99))]
        return f"{len(got):,} events, produce->stored p50 {p50:,.0f} ms, p99 {p99:,.0f} ms"

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def _alert_delay(alert: object, stamps: dict[str, int], now: float) -> float | None:
    """From the produce time of the oldest evidence event to now (None if none of them is
    remembered)."""
    evidence = [stamps[e] for e in getattr(alert, "evidence", ()) if e in stamps]
    return round(now - min(evidence), 1) if evidence else None


class Member:
    """Both stages of one consumer-group member: normalize in a child process, detect here."""

    def __init__(
        self,
        cfg: Config,
        kcfg: KafkaConfig,
        store: Store,
        store_name: str,
        member: str,
        console: Console,
        metrics: Path | None = None,
    ) -> None:
        self.console = console
        self.delays = Delays(metrics)
        kafka.ensure_topics(kcfg)
        # spawn, not fork: this process already has threads and Kafka sockets.
        ctx = multiprocessing.get_context("spawn")
        self.counts: SynchronizedArray[int] = ctx.Array("q", 3)  # records, events, dead letters
        self.normalize_stop = ctx.Event()
        self.normalize = ctx.Process(
            target=normalize_process,
            args=(cfg, kcfg, member, self.counts, self.normalize_stop, os.getpid()),
            name=f"secretwatch-normalize-{member}",
        )
        self.detect = JudgeStage(cfg, kcfg, store, store_name, member, self.delays.batch)
        self.failures: list[tuple[str, BaseException]] = []

    def run(self, stop: threading.Event) -> int:
        self.normalize.start()
        detect = threading.Thread(
            target=self._guard, args=("detect", self.detect.run, stop), name="detect"
        )
        detect.start()
        last = time.monotonic()
        while detect.is_alive() or self.normalize.is_alive():
            detect.join(timeout=0.5)
            if stop.is_set():
                self.normalize_stop.set()
            elif not self.normalize.is_alive():  # exited without being asked: a failure
                code = self.normalize.exitcode
                self.failures.append(("normalize", RuntimeError(f"exited with status {code}")))
                stop.set()
            if time.monotonic() - last >= REPORT_SECONDS:
                last = time.monotonic()
                self._report()
            if not detect.is_alive() and self.normalize.is_alive():
                self.normalize.join(timeout=STOP_SECONDS)
                if self.normalize.is_alive():  # stuck: its uncommitted records are read again
                    self.normalize.terminate()
                    self.normalize.join(5)
        if self.normalize.exitcode not in (0, None) and not any(
            name == "normalize" for name, _ in self.failures
        ):
            code = self.normalize.exitcode
            self.failures.append(("normalize", RuntimeError(f"exited with status {code}")))
        self._report()
        self.delays.close()
        for name, exc in self.failures:
            failed = inert(f"{name} stage failed: {exc}")
            self.console.print(Text.from_markup("[bold red]error:[/] ") + failed)
        return 1 if self.failures else 0

    def _guard(
        self, name: str, body: Callable[[threading.Event], None], stop: threading.Event
    ) -> None:
        try:
            body(stop)
        except BaseException as exc:  # noqa: BLE001 - reported, and the other stage stops
            log.exception("%s stage failed", name)
            self.failures.append((name, exc))
            stop.set()

    def _report(self) -> None:
        (records, events, dead), d = self.counts[:], self.detect
        self.console.print(
            f"normalize: {records:,} raw records -> {events:,} events, {dead:,} dead "
            f"letters | detect: {d.events:,} stored ({d.live.late_count:,} came late: stored, "
            f"not judged), {d.alerts:,} alerts raised or updated, "
            f"partitions {sorted(d.owned)} | {self.delays.report()}",
            highlight=False,
        )


STOP_SECONDS = 60.0  # how long a stopping member waits for its normalize process


def configure_logging() -> None:
    """Log lines on stderr (messages inert: they may quote records and receivers), Kafka's
    and Elasticsearch's own chatter at warnings only."""
    log_to_stderr(logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def normalize_process(
    cfg: Config,
    kcfg: KafkaConfig,
    member: str,
    counts: SynchronizedArray[int],
    stop: ProcessEvent,
    parent: int,
) -> None:
    """The normalize stage, in a child process of member `parent`; stops when `stop` is set
    or the member dies, and exits non-zero if the stage fails."""
    # The stage watches a thread Event: setting it is safe in a signal handler, where
    # setting the process-shared `stop` (which takes a lock) is not.
    halt = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the member, which asks
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    _stop_with_parent(parent)
    configure_logging()
    stage = NormalizeStage(cfg, kcfg, member)

    def relay() -> None:
        """Asked to stop by the member, or time to publish the counts."""
        while not halt.is_set():
            if stop.wait(0.5):
                halt.set()
            counts[:] = [stage.records, stage.events, stage.dead]

    threading.Thread(target=relay, name="relay", daemon=True).start()
    try:
        stage.run(halt)
    except BaseException:
        log.exception("normalize stage failed")
        raise
    finally:
        halt.set()
        counts[:] = [stage.records, stage.events, stage.dead]


def _stop_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the member dies (Linux), so no orphan keeps
    consuming; elsewhere, or if the member is already gone, stop at once."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.warning("normalize: cannot follow the member's death on this platform")
    if os.getppid() != parent:
        signal.raise_signal(signal.SIGTERM)


def wait_for_store(
    opener: Callable[[], Store], name: str, console: Console, patience: float = 120.0
) -> Store:
    """Open the store, waiting (0.5 s doubling to 10 s) while it is unavailable, e.g. still
    starting, or just created by another member and not ready yet; give up after
    `patience` seconds with the store's own error."""
    delay, deadline = 0.5, time.monotonic() + patience
    while True:
        try:
            return opener()
        except StoreError as exc:
            if time.monotonic() + delay > deadline:
                raise
            console.print(
                inert(f"store {name} not available yet ({exc}); retrying in {delay:.1f} s")
            )
        time.sleep(delay)
        delay = min(delay * 2, 10.0)


def run_member(
    cfg: Config,
    kcfg: KafkaConfig,
    store: Store,
    store_name: str,
    console: Console,
    member: str | None = None,
    metrics: Path | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; the exit status (0: stopped on request)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    name = member or default_member()
    console.print(
        f"member {name}: {kcfg.raw_topic_prefix}* -> {kcfg.events_topic} -> store "
        f"{store_name} (groups {kcfg.group_id}-normalize, {kcfg.group_id}-detect)",
        highlight=False,
    )
    return Member(cfg, kcfg, store, store_name, name, console, metrics).run(stop)
