"""The embedded runtime: owns every identity by default, judges what the caller stored,
keeps alerts in the outbox and tells its listener."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from detectors.alert import Alert
from detectors.settings import DetectorsConfig
from pipeline.detection.embedded import EMBEDDED, EmbeddedDetection, everything
from pipeline.detection.store import train_store
from pipeline.store.duckdb import DuckDBStore

WORLD = Path(__file__).parents[1] / "detectors"
if str(WORLD) not in sys.path:
    sys.path.insert(0, str(WORLD))
from world import START, TRAIN_DAYS, after, row, us, world  # noqa: E402

CUT = START + timedelta(days=TRAIN_DAYS)


def test_alerts_reach_the_outbox_and_the_listener(tmp_path: Path):
    heard: list[Alert] = []
    root = row("root", after(3.2), kind="root")
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.write_batch([r for r in world() if r.ts_us < us(CUT)])
        train_store(store, DetectorsConfig(), CUT)
        runtime = EmbeddedDetection(store, DetectorsConfig(), on_alerts=heard.extend)
        runtime.own()
        store.write_batch([root])
        raised = runtime.feed([root], clock_us=root.ts_us)
        assert [a.identity for a in raised] == ["root"] and heard == raised
        assert list(store.alerts()["id"]) == [raised[0].id]
        assert runtime.feed([root]) == [] and runtime.late_count == 0  # a copy: judged once
        runtime.snapshot()
        assert store.detection_state("live/" + EMBEDDED) is not None
        assert runtime.close() == []  # nothing delivered from here
    assert everything("anyone") == EMBEDDED


def _ticking() -> Callable[[], float]:
    """A clock that advances a second each time it is read: every whole peek takes 1 s."""
    reads = itertools.count()
    return lambda: float(next(reads))


def _alerts_of(store: DuckDBStore) -> list[tuple[str, list[str], int]]:
    return sorted(
        (a.id, a.detectors, a.evidence_count)
        for a in (Alert.model_validate_json(b) for b in store.alerts()["body"])
    )


def test_a_large_open_batch_is_judged_whole_only_now_and_then(tmp_path: Path):
    """Above `peek_always` events, each poll judges only its own events with the detectors
    that can (a root token is raised at once), and the whole batch (an enumeration) once
    three times the last whole judging's time has passed. Once the batch is complete, the
    alerts are those of judging it whole at every poll."""
    polls = [
        [row("orders/orders-api", after(3) + timedelta(seconds=s)) for s in range(1, 6)],
        [row("root", after(3.1), kind="root")],
        [
            row("orders/orders-api", after(3.2) + timedelta(seconds=s), f"secret/x{s}")
            for s in range(60)
        ],
        [row("payments/payments-api", after(3.3), "secret/payments/db")],
        [row("payments/payments-api", after(3.4), "secret/payments/db")],
        [row("payments/payments-api", after(4.5), "secret/payments/db")],  # completes hour 3
    ]
    raised: dict[str, list[list[str]]] = {}
    final: dict[str, list[tuple[str, list[str], int]]] = {}
    for way in ("throttled", "background", "whole", "no fork"):
        with DuckDBStore(tmp_path / f"{way}.duckdb") as store:
            store.write_batch([r for r in world() if r.ts_us < us(CUT)])
            train_store(store, DetectorsConfig(), CUT)
            runtime = EmbeddedDetection(store, DetectorsConfig())
            runtime.own()
            live = runtime.live
            live.peek_always = 10**6 if way == "whole" else 3
            # background: a clock that stands still (a whole judging takes no time, so one
            # starts at every poll); otherwise every whole judging takes a second
            live.monotonic = (lambda: 0.0) if way in ("background", "no fork") else _ticking()
            live.background = way in ("background", "no fork")
            if way == "no fork":  # none to be had: judged whole here, at every poll
                live.judging.start = lambda *_: False  # type: ignore[method-assign]
            raised[way] = []
            for rows in polls:
                store.write_batch(rows)
                alerts = runtime.feed(rows, clock_us=rows[-1].ts_us)
                raised[way].append(sorted({d for a in alerts for d in a.detectors}))
                live.judging.join()  # done before the next poll: found at the next one
            assert not runtime.busy
            runtime.snapshot()
            final[way] = _alerts_of(store)
    assert "root_token" in raised["whole"][1] and "enumeration" in raised["whole"][2]
    # throttled: whole at polls 1 (t 0-1); 2 and 3 are parts (t 2, 3 < 1 + 3); 4 is whole
    assert "root_token" in raised["throttled"][1]
    assert "enumeration" not in raised["throttled"][2] and "enumeration" in raised["throttled"][3]
    # background: the root token at once; the enumeration when poll 3's judging is done
    assert "root_token" in raised["background"][1]
    assert "enumeration" not in raised["background"][2]
    assert "enumeration" in raised["background"][3]
    assert raised["no fork"] == raised["whole"]
    assert final["throttled"] == final["whole"] == final["background"] == final["no fork"]


class _DiesAfterWriting:
    """A store whose process dies (an exception here) right after it stored events."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store

    def write_batch(self, *args, **kwargs):
        self.store.write_batch(*args, **kwargs)
        raise SystemExit("killed")

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def test_a_new_store_notes_where_detection_began_before_its_first_events_are_stored(
    tmp_path: Path,
):
    """With nothing to judge again from, a runtime killed between storing its first events
    and judging them still owes them: both ways of storing (the follower's, `anchor` before
    its write, and `process` writing itself) note the origin first."""
    root = row("root", after(3.2), kind="root")
    later = row("orders/orders-api", after(3.3))
    for way in ("itself", "follower"):
        with DuckDBStore(tmp_path / f"{way}.duckdb") as store:
            runtime = EmbeddedDetection(store, DetectorsConfig())
            runtime.own()
            if way == "follower":
                runtime.anchor([root])
                store.write_batch([root])  # then killed, before `stored`
            else:
                runtime.live.store = _DiesAfterWriting(store)  # type: ignore[assignment]
                try:
                    runtime.live.process([root])
                except SystemExit:
                    pass
            assert len(store.alerts()) == 0
            again = EmbeddedDetection(store, DetectorsConfig())
            again.own()
            store.write_batch([later])
            raised = again.feed([later])
            assert [a.identity for a in raised] == ["root"], way
