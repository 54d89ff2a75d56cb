"""Live detection in a child process (what `serve` runs): it judges what the parent stored,
its alerts reach the outbox through the parent's store, a child that died is started again
and judges again from the stored watermark without raising anything twice, and `close`
takes the last snapshot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from waiting import wait_until

from detectors.settings import DetectorsConfig
from pipeline.detection.embedded import EMBEDDED
from pipeline.detection.process import DetectionProcess, Judged
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
