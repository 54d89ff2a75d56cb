"""Live detection as a streaming member runs it (tests/bus/test_run.py without Kafka): four
partitions read unevenly, so the clock (the slowest partition's newest event, less the
lateness) lags days behind the newest events; the store fails now and then after the
detection state has changed; the state is loaded again (`assign`) at arbitrary points, and
a member is killed between judging a poll and committing it. Whatever happens, the alerts
are those of an uninterrupted run over the same polls (same ids, same findings in each),
and one incident is never split in two."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.settings import DetectorsConfig
from pipeline.bus.kafka import partition_of
from pipeline.detection.live import LiveDetection
from pipeline.detection.store import train_store
from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.store.duckdb import DuckDBStore

sys.path.insert(0, str(Path(__file__).parent / "bench"))
sys.path.insert(0, str(Path(__file__).parent / "detectors"))
from raw_stream import expected_events, raw_records, scenario  # noqa: E402
from world import START, TRAIN_DAYS, after, row, us, world  # noqa: E402

CFG = DetectorsConfig()
PARTITIONS = 4
LATENESS_US = 60_000_000
GAP_US = int(CFG.group_gap_hours * 3_600_000_000)
Poll = tuple[list[EventRow], int | None]


def owner(identity: str) -> str:
    return f"events/{partition_of(identity, PARTITIONS)}"


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[EventRow]:
    """The stream of tests/bus/test_run.py: 40 days, 11 labelled attacks (~15,000 events)."""
    folder = tmp_path_factory.mktemp("scenario")
    scenario(folder, days=40, scale=0.05)
    found = expected_events(raw_records(folder)).values()
    return sorted(found, key=lambda r: (r.ts_us, r.event_id))


def polls(events: list[EventRow], seed: int, most: int, all_first: bool = True) -> list[Poll]:
    """Polls of a member owning every partition: each takes a random number of records from
    a random subset of partitions, so partitions drift apart in event time; the clock is the
    newest event of the slowest partition still holding records (none once all are read),
    less the lateness, as pipeline/bus/align.py computes it. `all_first`: the first poll
    reads every partition; otherwise a partition not read yet does not hold the clock back
    (as align.py has it), and its first events can arrive late."""
    rng = random.Random(seed)
    queues: list[list[EventRow]] = [[] for _ in range(PARTITIONS)]
    for r in events:
        queues[partition_of(r.identity, PARTITIONS)].append(r)
    at = [0] * PARTITIONS
    newest: dict[int, int] = {}
    out: list[Poll] = []
    while any(at[p] < len(q) for p, q in enumerate(queues)):
        rows: list[EventRow] = []
        for p, q in enumerate(queues):
            if at[p] < len(q) and ((all_first and not out) or rng.random() < 0.6):
                take = q[at[p] : at[p] + rng.randint(1, most)]
                at[p] += len(take)
                newest[p] = take[-1].ts_us
                rows += take
        if rows:
            behind = [t for p, t in newest.items() if at[p] < len(queues[p])]
            out.append((rows, min(behind) - LATENESS_US if behind else None))
    return out


class Flaky:
    """A store whose `save_detection` raises StoreError on the chosen calls; `partial`: as
    Elasticsearch can (no transactions), the alerts of the failing call are written first."""

    def __init__(self, store: DuckDBStore, fail: set[int], partial: bool = False) -> None:
        self.store, self.fail, self.partial, self.calls = store, fail, partial, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def save_detection(self, baselines, state, alerts, version, replace=False) -> None:  # noqa: ANN001
        self.calls += 1
        if self.calls in self.fail:
            if self.partial and alerts:
                self.store.save_detection([], {}, alerts, version)
            raise StoreError(f"injected failure of save_detection call {self.calls}")
        self.store.save_detection(baselines, state, alerts, version, replace)


def member(
    store: Any,
    stream: list[Poll],
    snapshot_every: int = 7,
    reload_at: frozenset[int] = frozenset(),
    kill_at: frozenset[int] = frozenset(),
) -> None:
    """Drive LiveDetection as pipeline/bus/judge_stage.py does: events stored first, then
    judged; a store failure while judging loads the state again and retries the poll; a
    failed snapshot is retried as it is. `reload_at`: the state is loaded again after that
    poll (a rebalance; every other one snapshots first, as on revocation). `kill_at`: the
    member dies after judging that poll, before committing it: a new one takes over, and
    the poll is delivered again."""

    def start() -> LiveDetection:
        live = LiveDetection(store, CFG, "m", lateness_seconds=60, snapshot_seconds=1e12)
        retry(lambda: live.assign(owner))
        return live

    def retry(step: Callable[[], object], reload: Callable[[], None] | None = None) -> None:
        for _ in range(50):
            try:
                step()
                return
            except StoreError:
                if reload is not None:
                    retry(reload)
        raise AssertionError("the store kept failing")

    live = start()
    killed: set[int] = set()
    i = 0
    while i < len(stream):
        rows, clock = stream[i]
        store.write_batch(rows)
        retry(partial(live.process, rows, clock_us=clock, stored=True), partial(live.assign, owner))
        if i in kill_at and i not in killed:
            killed.add(i)
            live = start()
            continue  # not committed: delivered again
        if i in reload_at:
            if i % 2:
                retry(live.snapshot)
            retry(partial(live.assign, owner))
        if i % snapshot_every == snapshot_every - 1:
            retry(live.snapshot)
        i += 1


def alerts(store: DuckDBStore) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Alert id -> (identity, its findings' keys)."""
    out = {}
    for body in store.alerts()["body"]:
        a = orjson.loads(body)
        keys = sorted((f["detector"], f["window_start"]) for f in a["findings"])
        out[a["id"]] = (a["identity"], keys)
    return out


def assert_no_split_incident(store: DuckDBStore) -> None:
    """Two alerts about one identity are at least the grouping gap apart."""
    by_identity: dict[str, list[dict]] = {}
    for body in store.alerts()["body"]:
        a = orjson.loads(body)
        by_identity.setdefault(a["identity"], []).append(a)
    for identity, mine in by_identity.items():
        mine.sort(key=lambda a: a["window_start"])
        for before, next_ in zip(mine, mine[1:], strict=False):
            gap = _us(next_["window_start"]) - _us(before["window_end"])
            assert gap >= GAP_US, (identity, before["id"], next_["id"], before, next_)


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1_000_000)


@pytest.fixture
def reference(events: list[EventRow], tmp_path: Path) -> Iterator[Callable]:
    """The alerts of an uninterrupted member over the same polls."""

    def run(stream: list[Poll]) -> dict:
        with DuckDBStore(tmp_path / f"ref-{id(stream)}.duckdb") as store:
            member(store, stream)
            assert_no_split_incident(store)
            return alerts(store)

    yield run


@pytest.mark.parametrize(("seed", "most"), [(1, 40), (2, 120), (3, 300)])
def test_reloads_failures_and_kills_change_no_alert(
    events: list[EventRow], tmp_path: Path, reference: Callable, seed: int, most: int
):
    stream = polls(events, seed, most)
    expected = reference(stream)
    assert len(expected) >= 5
    rng = random.Random(seed)
    n = len(stream)
    with DuckDBStore(tmp_path / "s.duckdb") as opened:
        store = Flaky(opened, {rng.randint(1, 3 * n) for _ in range(n // 6)}, partial=seed % 2 == 1)
        member(
            store,
            stream,
            reload_at=frozenset(rng.sample(range(n), n // 8)),
            kill_at=frozenset(rng.sample(range(n), n // 12)),
        )
        assert store.calls > 0
        assert_no_split_incident(opened)
        assert alerts(opened) == expected


@pytest.mark.parametrize(("seed", "most"), [(20, 1500), (12, 150)])
def test_late_events_stay_unjudged_across_reloads(
    events: list[EventRow], tmp_path: Path, reference: Callable, seed: int, most: int
):
    """A partition read only after others drove the clock past its first events: those are
    late (stored, not judged). Loaded again from an older snapshot, they must stay unjudged:
    judged, one could open an incident before a stored one, which then takes in the stored
    one's findings (one incident, two alerts)."""
    stream = polls(events, seed, most, all_first=False)
    expected = reference(stream)
    rng = random.Random(seed)
    n = len(stream)
    with DuckDBStore(tmp_path / "s.duckdb") as opened:
        store = Flaky(opened, {rng.randint(1, 3 * n) for _ in range(max(1, n // 6))}, partial=True)
        member(
            store,
            stream,
            reload_at=frozenset(rng.sample(range(n), n // 8)),
            kill_at=frozenset(rng.sample(range(n), n // 12)),
        )
        assert_no_split_incident(opened)
        assert alerts(opened) == expected


class FailAfterLate(Flaky):
    """Fails, once, the first save of alerts after late events were listed (the alerts are
    written first, as Elasticsearch can)."""

    def __init__(self, store: DuckDBStore) -> None:
        super().__init__(store, set(), partial=True)
        self.listed = False

    def save_detection(self, baselines, state, alerts, version, replace=False) -> None:  # noqa: ANN001
        self.listed = self.listed or any(k.endswith("/late") for k in state)
        if self.listed and alerts and not self.fail:
            self.fail = {self.calls + 1}
        super().save_detection(baselines, state, alerts, version, replace)


def test_late_events_delivered_again_after_a_failed_save_stay_late(
    events: list[EventRow], tmp_path: Path, reference: Callable
):
    """One partition is read first and drives the clock ten days ahead: the others' first
    events come late. The alerts of that poll fail to save, the state is loaded again and
    the poll delivered again: its late events stay unjudged, as in an uninterrupted run."""
    first = [r for r in events if owner(r.identity) == "events/0"][:300]
    taken = {r.event_id for r in first}
    rest = [r for r in events if r.event_id not in taken]
    stream = [(first, first[-1].ts_us - LATENESS_US), *polls(rest, 6, 400)]
    expected = reference(stream)
    with DuckDBStore(tmp_path / "s.duckdb") as opened:
        store = FailAfterLate(opened)
        member(store, stream, snapshot_every=25)  # no snapshot before the failure
        assert store.fail, "no alerts were saved after late events were listed"
        assert_no_split_incident(opened)
        assert alerts(opened) == expected


def test_a_reload_before_the_first_snapshot_loses_nothing(
    events: list[EventRow], tmp_path: Path, reference: Callable
):
    stream = polls(events, 4, most=200)
    expected = reference(stream)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        # No training, no snapshot yet: the first reload comes before anything was saved.
        member(store, stream, snapshot_every=10**9, reload_at=frozenset({3, 40}))
        assert alerts(store) == expected


def test_an_untrained_store_keeps_what_was_learned_across_a_reload(
    events: list[EventRow], tmp_path: Path
):
    """`secretwatch run` never trains: the baselines and watermarks its snapshots wrote are
    the whole detection state, and a reload must load them."""
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        live = LiveDetection(store, CFG, "m", lateness_seconds=0)
        live.assign(owner)
        for i in range(0, 3000, 300):
            live.process(events[i : i + 300])
        live.snapshot()
        watermark, names = live.start, sorted(live.detection.base.names)
        again = LiveDetection(store, CFG, "m2", lateness_seconds=0)
        again.assign(owner)
        assert again.start == watermark
        assert sorted(again.detection.base.names) == names
        assert len(again.buffer) == sum(1 for r in events[:3000] if r.ts_us >= watermark)


def test_an_incident_judged_again_in_one_go_keeps_the_id_its_first_part_gave_it(
    tmp_path: Path,
):
    """Alice reads at 03:06 (an hour she never uses: unusual_time opens the incident), then
    at 03:36 from an outside address (new_source, same hour: it sorts first). Judged again
    in one go after a reload, new_source would open the incident under another id; it
    re-opens the stored one instead."""
    cfg = DetectorsConfig(multivariate={"enabled": False})
    cut = START + timedelta(days=TRAIN_DAYS)
    normal = world(TRAIN_DAYS + 1)
    odd = row("alice", after(3.1), ip="192.168.10.4", kind="human")
    outside = row("alice", after(3.6), ip="198.51.100.7", kind="human")
    later = [r for r in normal if us(after(3)) <= r.ts_us < us(after(12))]

    def run(path: Path, reload: bool) -> dict:
        with DuckDBStore(path) as store:
            store.write_batch([r for r in normal if r.ts_us < us(cut)])
            train_store(store, cfg, cut)
            # Snapshots only where the test takes them: one taken by the wall clock (a
            # slow machine) after the odd reads would spare the reload its judging again.
            live = LiveDetection(store, cfg, "m", lateness_seconds=0, snapshot_seconds=1e12)
            live.assign(owner)
            live.process([r for r in normal if us(cut) <= r.ts_us < us(after(3))])
            live.snapshot()
            first = live.process([odd], clock_us=odd.ts_us)
            assert [a.detectors for a in first] == [["unusual_time"]]
            live.process([outside], clock_us=outside.ts_us)
            if reload:
                live.assign(owner)
            live.process(later, clock_us=later[-1].ts_us)
            found = alerts(store)
            assert [a for a in found.values() if a[0] == "alice"] == [
                (
                    "alice",
                    [
                        ("new_source", "2026-04-27T03:00:00+00:00"),
                        ("unusual_time", "2026-04-27T03:00:00+00:00"),
                    ],
                )
            ]
            assert first[0].id in found
            return found

    assert run(tmp_path / "a.duckdb", reload=True) == run(tmp_path / "b.duckdb", reload=False)
