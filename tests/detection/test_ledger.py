"""The late-event ledger: what it lists, what a reload reads back, what a snapshot clears."""

from __future__ import annotations

from pathlib import Path

from pipeline.detection import checkpoint as cp
from pipeline.detection.ledger import LateLedger
from pipeline.store.duckdb import DuckDBStore


def test_a_late_event_is_listed_only_if_a_reload_would_judge_it():
    ledger = LateLedger()
    ledger.floor = 100
    assert ledger.replayed(None, 100) and not ledger.replayed(None, 99)
    assert ledger.replayed(50, 60) and not ledger.replayed(200, 150)
    ledger.floor = None
    assert ledger.replayed(None, 0)


def test_listed_events_survive_a_reload_and_unlisted_ones_are_kept(tmp_path: Path):
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        ledger = LateLedger()
        ledger.note("e1", "events/0", "alice")
        assert "e1" in ledger and ledger.unsaved == {"events/0"}
        store.save_detection([], ledger.unsaved_lists(start_us=500), [], 0)
        ledger.listed()
        ledger.note("e2", "events/1", "bob")  # its listing never stored

        again = LateLedger()
        again.late = dict(ledger.late)
        assert again.reload(store, {"events/0": "alice"}) == 500
        assert set(again.late) == {"e1", "e2"}
        assert again.saved == {"events/0"} and again.unsaved == {"events/1"}

        cleared = again.cleared_lists()
        assert cleared == {cp.late_key("events/0"): b'{"late":[]}'}
        store.save_detection([], cleared, [], 0)
        again.reset(600)
        assert again.floor == 600 and not again.late
        fresh = LateLedger()
        assert fresh.reload(store, {"events/0": "alice"}) is None and not fresh.late


def test_keep_owned_drops_what_another_member_owns_now():
    ledger = LateLedger()
    ledger.note("e1", "events/0", "alice")
    ledger.note("e2", "events/1", "bob")
    ledger.keep_owned(lambda identity: "events/0" if identity == "alice" else None)
    assert set(ledger.late) == {"e1"}
