"""Live detection in a child process (what `serve` runs): it judges what the parent stored,
its alerts reach the outbox through the parent's store, a child that died is started again
and judges again from the stored watermark without raising anything twice, and `close`
takes the last snapshot."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from waiting import wait_until

from detectors.settings import DetectorsConfig
from pipeline.detection.background import WholeJudging
from pipeline.detection.embedded import EMBEDDED
from pipeline.detection.process import DetectionProcess, Judged, close_in_forks
from pipeline.detection.store import train_store
from pipeline.store.duckdb import DuckDBStore

WORLD = Path(__file__).parents[1] / "detectors"
if str(WORLD) not in sys.path:
    sys.path.insert(0, str(WORLD))
from world import START, TRAIN_DAYS, after, row, us, world  # noqa: E402

CUT = START + timedelta(days=TRAIN_DAYS)


def _opener(path: Path) -> Callable[[], DuckDBStore]:
    """What the parent answers the child's store calls with: a store of its own."""

    def opener() -> DuckDBStore:
        store = DuckDBStore(path)
        store.open()
        return store

    return opener


def test_the_child_judges_stored_events_and_survives_its_own_death(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    heard: list[Judged] = []
    opener = _opener(path)

    with DuckDBStore(path) as store:
        store.write_batch([r for r in world() if r.ts_us < us(CUT)])
        train_store(store, DetectorsConfig(), CUT)
        child = DetectionProcess(opener, DetectorsConfig(), heard.append)
        child.own()
        try:
            root = row("root", after(3.2), kind="root")
            store.write_batch([root])
            child.feed([root])
            wait_until(lambda: any(j.alerts for j in heard), what="the alert reported")
            raised = [a for j in heard for a in j.alerts]
            assert [a.identity for a in raised] == ["root"]
            assert list(store.alerts()["id"]) == [raised[0].id]  # in the outbox

            assert child._child is not None  # noqa: SLF001 - killed as a crash would
            child._child.kill()  # noqa: SLF001
            child._child.join(30)  # noqa: SLF001
            again = row("root", after(3.25), kind="root")
            store.write_batch([again])
            child.feed([again])  # starts another child, which judges again from the watermark
            wait_until(lambda: len(heard) >= 2, what="the second batch judged")
            assert len(store.alerts()) == 1  # the incident grew; nothing raised twice
        finally:
            assert child.close() == []
        assert store.detection_state("live/" + EMBEDDED) is not None  # the last snapshot


def test_events_stored_before_the_first_child_judged_them_are_judged_after_a_kill(
    tmp_path: Path,
) -> None:
    """A new store, nothing to judge again from: the reader stores a batch (`anchor` first,
    as its `before_store`), and the service is killed before the child judged it. The next
    start still owes it: the root token is raised then."""
    path = tmp_path / "s.duckdb"
    heard: list[Judged] = []
    opener = _opener(path)

    root = row("root", after(3.2), kind="root")
    with DuckDBStore(path) as store:
        first = DetectionProcess(opener, DetectorsConfig(), heard.append)
        first.own()
        first.anchor([root])
        store.write_batch([root])
        first._kill()  # noqa: SLF001 - as kill -9 of the service would, before any feed
        assert heard == [] and len(store.alerts()) == 0
        again = DetectionProcess(opener, DetectorsConfig(), heard.append)
        again.own()
        try:
            later = row("orders/orders-api", after(3.3))
            again.anchor([later])  # the store says where detection began: nothing written
            store.write_batch([later])
            again.feed([later])
            wait_until(lambda: any(j.alerts for j in heard), what="the owed alert")
            assert [a.identity for j in heard for a in j.alerts] == ["root"]
        finally:
            assert again.close() == []


def _judging_when_killed(service: Connection, forks: Connection) -> None:
    """A detection process as `_child_main` sets it up (its pipe to the service closed in
    forks), killed while a whole judging that never ends runs in its fork."""
    close_in_forks(service)
    never, _kept = os.pipe()

    def judge(events: object, start_us: int, end_us: int) -> list[object]:
        forks.send((os.getpid(), service.closed))
        os.read(never, 1)  # nothing is ever written
        return []

    assert WholeJudging().start(lambda: None, judge, 0, 1)
    service.recv()  # until killed


def _running(pid: int) -> bool:
    """Alive, not a zombie (the fork is reparented, maybe to a PID 1 that does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; prctl")
def test_a_detection_process_killed_mid_judging_is_seen_at_once_and_its_fork_ends_too():
    """Before: the fork held the pipes, so the service's store and result threads waited
    for it to end (never, if it hung), and it went on holding the dead process's memory.
    Now the fork closes them (it has no business on them) and dies with its parent."""
    ctx = mp.get_context("spawn")  # as `serve` starts its detection process
    service, service_child = ctx.Pipe()
    forks, forks_child = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_judging_when_killed, args=(service_child, forks_child))
    child.start()
    service_child.close()
    forks_child.close()
    fork = 0
    try:
        assert forks.poll(60), "the whole judging did not start"
        fork, closed = forks.recv()
        assert closed, "the fork holds the pipe to the service"
        assert _running(fork)
        child.kill()
        child.join(10)
        assert service.poll(10), "the service did not see its detection process die"
        with pytest.raises(EOFError):
            service.recv()
        wait_until(lambda: not _running(fork), 10, what="the fork killed with its parent")
    finally:
        if fork and _running(fork):
            os.kill(fork, signal.SIGKILL)
        child.kill()
