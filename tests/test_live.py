"""Live detection (the streaming member's detection stage) on the detector tests' controlled
world: the same alerts as replay, whichever way the identities are split between members,
raised as the evidence arrives, and nothing raised twice or lost across a crash."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from detectors import buffer
from detectors.settings import DetectorsConfig
from pipeline.detection.live import LiveDetection
from pipeline.detection.store import train_store
from pipeline.errors import StoreError
from pipeline.record import EventRow
from pipeline.store.base import EventFilter
from pipeline.store.duckdb import DuckDBStore

WORLD = Path(__file__).parent / "detectors"
if str(WORLD) not in sys.path:
    sys.path.insert(0, str(WORLD))
from world import START, TRAIN_DAYS, after, row, us, world  # noqa: E402

CUT = START + timedelta(days=TRAIN_DAYS)
ROOT = row("root", after(3.2), kind="root")
STRAY = row("orders/orders-api", after(10.5), "secret/payments/db")
END = after(12)
CFG = DetectorsConfig()


def _events() -> list[EventRow]:
    normal = [r for r in world(TRAIN_DAYS + 1) if r.ts_us < us(END)]
    return sorted([*normal, ROOT, STRAY], key=lambda r: r.ts_us)


def owner_of(members: int, m: int) -> Callable[[str], str | None]:
    def owner(identity: str) -> str | None:
        p = zlib.crc32(identity.encode()) % members
        return f"events/{p}" if p == m else None

    return owner


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    events = _events()
    with DuckDBStore(tmp_path / "s.duckdb") as opened:
        opened.write_batch([r for r in events if r.ts_us < us(CUT)])
        train_store(opened, CFG, CUT)
        yield opened


def _stream() -> list[list[EventRow]]:
    later = [r for r in _events() if r.ts_us >= us(CUT)]
    return [later[i : i + 50] for i in range(0, len(later), 50)]


def _feed(members: list[tuple[LiveDetection, Callable]], batches: list[list[EventRow]]) -> None:
    for batch in batches:
        for live, owner in members:
            live.process([r for r in batch if owner(r.identity)], clock_us=batch[-1].ts_us)


def _evidence(store: DuckDBStore) -> dict[str, set[str]]:
    """Alert id -> its evidence event ids (the ids are the table's key: no duplicates)."""
    return {a["id"]: set(a["evidence"]) for a in map(orjson.loads, store.alerts()["body"])}


def _stored_ids(store: DuckDBStore) -> list[str]:
    return sorted(store.alerts()["id"])


@pytest.mark.parametrize("split", [1, 2, 3])
def test_members_together_raise_what_one_does(store: DuckDBStore, split: int):
    members = []
    for m in range(split):
        live = LiveDetection(store, CFG, f"m{m}", lateness_seconds=0)
        live.assign(owner_of(split, m))
        members.append((live, owner_of(split, m)))
    _feed(members, _stream())
    alerts = store.alerts()
    assert set(alerts["identity"]) == {"root", "orders/orders-api"}
    assert len(alerts) == 2
    assert store.count(EventFilter(since=CUT)) == sum(len(b) for b in _stream())


def test_an_alert_is_raised_by_the_poll_that_brings_its_evidence(store: DuckDBStore):
    live = LiveDetection(store, CFG, "m0", lateness_seconds=0)
    live.assign(lambda identity: "events/0")
    before = [r for r in _events() if us(CUT) <= r.ts_us < ROOT.ts_us]
    assert live.process(before) == []
    # The root call's hour is far from complete, yet the alert comes at once.
    alerts = live.process([ROOT], clock_us=ROOT.ts_us)
    assert [a.identity for a in alerts] == ["root"]
    assert alerts[0].evidence == [ROOT.event_id]
    assert _stored_ids(store) == [alerts[0].id]


def test_a_member_killed_between_snapshots_is_replaced_without_loss_or_duplicates(
    store: DuckDBStore, tmp_path: Path
):
    batches = _stream()
    reference_path = tmp_path / "reference.duckdb"
    with DuckDBStore(reference_path) as reference:
        reference.write_batch([r for r in _events() if r.ts_us < us(CUT)])
        train_store(reference, CFG, CUT)
        whole = LiveDetection(reference, CFG, "ref", lateness_seconds=0)
        whole.assign(lambda identity: "events/0")
        _feed([(whole, lambda identity: True)], batches)
        whole.snapshot()
        expected, learned = _evidence(reference), reference.baselines()

    owner = owner_of(1, 0)
    first = LiveDetection(store, CFG, "m0", lateness_seconds=0, snapshot_seconds=1e9)
    first.assign(owner)
    third = len(batches) // 3
    _feed([(first, owner)], batches[:2])
    first.snapshot()
    _feed([(first, owner)], batches[2:third])
    _feed([(first, owner)], batches[third : 2 * third])  # done, committed, not snapshotted
    first.process(batches[2 * third])  # stored, but killed before the commit
    del first

    second = LiveDetection(store, CFG, "m1", lateness_seconds=0)
    second.assign(owner)
    _feed([(second, owner)], batches[2 * third :])  # the uncommitted batch comes again
    assert _evidence(store) == expected and len(expected) == 2
    second.snapshot()  # learned every event exactly once
    assert store.baselines() == learned
    assert store.count(EventFilter(since=CUT)) == sum(len(b) for b in batches)


def test_rebalancing_hands_identities_over_with_their_state(store: DuckDBStore):
    batches = _stream()
    half = len(batches) // 2
    a = LiveDetection(store, CFG, "a", lateness_seconds=0)
    a.assign(owner_of(1, 0))  # alone at first: owns everything
    _feed([(a, owner_of(1, 0))], batches[:half])
    a.snapshot()  # on revocation
    members = []
    for m, name in enumerate(("a", "b")):
        live = a if name == "a" else LiveDetection(store, CFG, name, lateness_seconds=0)
        live.assign(owner_of(2, m))
        members.append((live, owner_of(2, m)))
    _feed(members, batches[half:])
    assert set(store.alerts()["identity"]) == {"root", "orders/orders-api"}
    assert len(store.alerts()) == 2


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"window_minutes": 5}, "detectors.window_minutes=10"),
        ({"timezone": "Europe/Berlin"}, "detectors.timezone=UTC"),
        ({"rate_history_weeks": 4}, "detectors.rate_history_weeks=8"),
    ],
)
def test_baselines_trained_with_another_layout_are_refused(
    store: DuckDBStore, change: dict, named: str
):
    """As `secretwatch detect` does: baselines learned in another time layout would be
    misread (hours of the week in another zone, another ring of weeks)."""
    live = LiveDetection(store, DetectorsConfig(**change), "m0", lateness_seconds=0)
    with pytest.raises(StoreError) as info:
        live.assign(lambda identity: "events/0")
    assert named in str(info.value) and "secretwatch train" in str(info.value)


def test_codes_made_anew_while_streaming_change_no_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A stream's buffer is never empty, so it codes what it holds anew once its code
    tables outgrow it (detectors/buffer.py): forced here whenever they hold more values
    than twice its events, through a spray of user names, with the same alerts."""
    spray = [row(f"user-{n}", after(n * 0.04), kind="human", outcome="denied") for n in range(280)]
    events = sorted([*_events(), *spray], key=lambda r: r.ts_us)
    later = [r for r in events if r.ts_us >= us(CUT)]
    stream = [later[i : i + 50] for i in range(0, len(later), 50)]

    def alerts(path: Path) -> dict[str, set[str]]:
        with DuckDBStore(path) as opened:
            opened.write_batch([r for r in events if r.ts_us < us(CUT)])
            train_store(opened, CFG, CUT)
            live = LiveDetection(opened, CFG, "m0", lateness_seconds=0)
            live.assign(lambda identity: "events/0")
            _feed([(live, lambda identity: "events/0")], stream)
            return _evidence(opened)

    as_before = alerts(tmp_path / "before.duckdb")
    compacted = []
    original = buffer.EventBuffer._compact

    def compact(self: buffer.EventBuffer) -> None:
        compacted.append(len(self))
        original(self)

    monkeypatch.setattr(buffer, "TABLE_SLACK", 0)
    monkeypatch.setattr(buffer.EventBuffer, "_compact", compact)
    assert alerts(tmp_path / "anew.duckdb") == as_before
    assert len(compacted) >= 3 and all(compacted)  # a buffer never empty, coded anew
    assert len(as_before) >= 2
