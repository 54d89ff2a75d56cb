"""The `Store` contract, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pandas as pd
import pytest

from detectors.alert import Finding, Incident
from pipeline.errors import StoreError
from pipeline.record import FIELDS, PROVISIONAL_NOTE, EventRow, from_micros, to_micros
from pipeline.sources.base import DeadLetter
from pipeline.store.base import GROUPABLE, Checkpoint, DeliveryOutcome, EventFilter, Store

T0 = "2026-05-01T03:00:00Z"


def make_row(
    event_id: str, ts: str = T0, path: str | None = "secret/apps/orders/db", **fields: object
) -> EventRow:
    """A row; `path` is the canonical secret (None for auth events)."""
    values: dict[str, object] = {
        "event_id": event_id,
        "ts_us": to_micros(ts),
        "source": "vault",
        "backend": "vault",
        "identity": "orders-api",
        "identity_kind": "service",
        "secret": path,
        "action": "read",
        "operation": "read",
        "outcome": "success",
        "source_ip": "10.0.0.1",
        "user_agent": None,
        "request_id": event_id,
        "error": None,
        "note": None,
    }
    values.update(fields)
    return EventRow(**values)  # type: ignore[arg-type]


def _utc(text: str) -> datetime:
    return from_micros(to_micros(text))


@pytest.fixture
def populated(store: Store) -> Store:
    rows = [
        make_row("e1", "2026-05-01T03:00:00Z"),
        make_row("e2", "2026-05-01T03:05:00Z", identity="orders-worker"),
        make_row(
            "e3",
            "2026-05-01T04:00:00Z",
            identity="alice",
            identity_kind="human",
            outcome="denied",
            error="permission denied",
            path="secret/apps/payments/stripe",
        ),
        make_row(
            "e4",
            "2026-05-01T05:00:00Z",
            identity="alice",
            identity_kind="human",
            action="list",
            operation="list",
            path="secret/apps/",
        ),
        make_row(
            "e5",
            "2026-05-01T06:00:00Z",
            identity="a_b",
            path=None,
            action="auth",
            operation="update",
        ),
        make_row(
            "e6",
            "2026-05-01T07:00:00Z",
            identity="axb",
            source="k8s",
            backend="kubernetes",
            path="shop/db",
        ),
        make_row(
            "e7",
            "2026-05-02T03:00:00Z",
            identity="alice",
            identity_kind="human",
            outcome="denied",
            path="secret/apps/payments/stripe",
        ),
    ]
    assert store.write_batch(rows) == 7
    return store


def _ids(frame: pd.DataFrame) -> list[str]:
    return list(frame["event_id"])


# -- writes --------------------------------------------------------------------------------


def test_write_batch_is_idempotent(store: Store) -> None:
    rows = [make_row(f"e{i}", f"2026-05-01T03:0{i}:00Z") for i in range(5)]
    assert store.write_batch(rows) == 5
    assert store.count() == 5
    assert store.write_batch(rows) == 0  # the same rows again add nothing
    assert store.write_batch(list(reversed(rows))) == 0
    assert store.count() == 5
    more = [*rows[:2], make_row("e9", "2026-05-01T03:09:00Z")]
    assert store.write_batch(more) == 1  # only the new one counts
    assert store.count() == 6


def test_duplicates_within_one_batch(store: Store) -> None:
    first = make_row("dup", identity="first")
    second = make_row("dup", identity="second")
    assert store.write_batch([first, second, make_row("other")]) == 2
    frame = store.events()
    assert sorted(_ids(frame)) == ["dup", "other"]
    assert frame.set_index("event_id").loc["dup", "identity"] == "first"


def test_empty_batch(store: Store) -> None:
    assert store.write_batch([]) == 0
    assert store.count() == 0
    assert len(store.events()) == 0


# A provisional note, alone or followed by what else the parser noted (a lone request to
# disable an audit device keeps its tampering mark: pipeline/record.py `provisional`).
PROVISIONAL_NOTES = [PROVISIONAL_NOTE, f"{PROVISIONAL_NOTE}; audit tampering: disabled x/"]


@pytest.mark.parametrize("note", PROVISIONAL_NOTES)
def test_complete_row_replaces_provisional(store: Store, note: str) -> None:
    lone = make_row("r1", "2026-05-01T03:00:00Z", note=note)
    assert store.write_batch([lone]) == 1
    complete = make_row("r1", "2026-05-01T03:00:01Z", outcome="denied")
    store.write_batch([complete])
    frame = store.events()
    assert _ids(frame) == ["r1"]
    assert frame["outcome"][0] == "denied"
    assert pd.isna(frame["note"][0])
    # A provisional row never replaces a complete one.
    assert store.write_batch([lone]) == 0
    assert store.events()["outcome"][0] == "denied"


@pytest.mark.parametrize("note", PROVISIONAL_NOTES)
def test_a_provisional_event_pairs_with_its_record_across_batches_and_minutes(
    store: Store, note: str
) -> None:
    """A request answered 45 minutes later (a long Kubernetes watch, a slow Vault call):
    the complete record still replaces the provisional one, and the provisional one read
    again later (a restart) is not stored beside it."""
    lone = make_row("slow", "2026-05-01T03:00:00Z", note=note)
    store.write_batch([make_row("before", "2026-05-01T02:59:00Z"), lone])
    complete = make_row("slow", "2026-05-01T03:45:00Z", outcome="denied")
    assert store.write_batch([complete, make_row("after", "2026-05-01T03:45:00Z")]) == 2
    assert store.write_batch([lone]) == 0
    assert store.write_batch([complete]) == 0
    frame = store.events()
    assert sorted(_ids(frame)) == ["after", "before", "slow"]
    assert frame.set_index("event_id").loc["slow", "outcome"] == "denied"


def test_round_trip_of_every_field(store: Store) -> None:
    row = make_row(
        "full",
        "2020-12-01T20:29:04.356625Z",
        user_agent="vault-agent/1.15",
        error="1 error occurred",
        note="n",
        source_ip="192.0.2.1",
    )
    store.write_batch([row])
    frame = store.events()
    assert list(frame.columns) == ["ts" if f == "ts_us" else f for f in FIELDS]
    record = frame.to_dict(orient="records")[0]
    assert record["ts"] == datetime(2020, 12, 1, 20, 29, 4, 356625, tzinfo=UTC)
    for name in FIELDS:
        if name != "ts_us":
            assert record[name] == getattr(row, name), name


def test_secret_none_round_trips(store: Store) -> None:
    store.write_batch([make_row("n", path=None, action="auth")])
    value = store.events()["secret"][0]
    assert value is None or pd.isna(value)


# -- queries -------------------------------------------------------------------------------


def test_events_ordered_and_limited(populated: Store) -> None:
    assert _ids(populated.events()) == ["e1", "e2", "e3", "e4", "e5", "e6", "e7"]
    assert _ids(populated.events(newest_first=True)) == ["e7", "e6", "e5", "e4", "e3", "e2", "e1"]
    assert _ids(populated.events(limit=2)) == ["e1", "e2"]
    assert _ids(populated.events(limit=2, newest_first=True)) == ["e7", "e6"]


def test_time_range(populated: Store) -> None:
    where = EventFilter(since=_utc("2026-05-01T04:00:00Z"), until=_utc("2026-05-01T06:00:00Z"))
    assert _ids(populated.events(where)) == ["e3", "e4"]  # since inclusive, until exclusive
    assert populated.count(where) == 2
    assert _ids(populated.events(EventFilter(since=_utc("2026-05-01T07:00:00Z")))) == ["e6", "e7"]
    assert _ids(populated.events(EventFilter(until=_utc("2026-05-01T03:05:00Z")))) == ["e1"]
    empty = EventFilter(since=_utc("2030-01-01T00:00:00Z"))
    assert populated.count(empty) == 0
    assert len(populated.events(empty)) == 0


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ("alice", ["e3", "e4", "e7"]),
        ("orders-api", ["e1"]),
        ("orders-*", ["e1", "e2"]),
        ("*-worker", ["e2"]),
        ("*", ["e1", "e2", "e3", "e4", "e5", "e6", "e7"]),
        ("a_b", ["e5"]),  # `_` is literal, not a one-character wildcard
        ("a_*", ["e5"]),
        ("a%b", []),  # `%` is literal too
        ("ALICE", []),  # exact, case-sensitive
        ("nobody", []),
    ],
)
def test_identity_filter(populated: Store, identity: str, expected: list[str]) -> None:
    where = EventFilter(identity=identity)
    assert _ids(populated.events(where)) == expected
    assert populated.count(where) == len(expected)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("secret/apps/payments/stripe", ["e3", "e7"]),
        ("secret/apps/", ["e4"]),
        ("secret/apps/*", ["e1", "e2", "e3", "e4", "e7"]),
        ("*/db", ["e1", "e2", "e6"]),
        ("secret/apps", []),
    ],
)
def test_secret_filter(populated: Store, secret: str, expected: list[str]) -> None:
    assert _ids(populated.events(EventFilter(secret=secret))) == expected


def test_action_outcome_source_filters(populated: Store) -> None:
    assert _ids(populated.events(EventFilter(action="list"))) == ["e4"]
    assert _ids(populated.events(EventFilter(action="auth"))) == ["e5"]
    assert _ids(populated.events(EventFilter(outcome="denied"))) == ["e3", "e7"]
    assert _ids(populated.events(EventFilter(source="k8s"))) == ["e6"]
    assert populated.count(EventFilter(source="vault")) == 6
    both = EventFilter(identity="alice", outcome="denied", since=_utc("2026-05-02T00:00:00Z"))
    assert _ids(populated.events(both)) == ["e7"]
    assert populated.count(EventFilter(action="delete")) == 0


# -- stats ---------------------------------------------------------------------------------


def test_stats_by_identity(populated: Store) -> None:
    frame = populated.stats("identity")
    assert list(frame.columns) == ["identity", "events", "denied", "first_seen", "last_seen"]
    rows = {r.identity: r for r in frame.itertuples(index=False)}
    assert list(frame["identity"])[0] == "alice"  # most frequent first
    assert (rows["alice"].events, rows["alice"].denied) == (3, 2)
    assert rows["alice"].first_seen == _utc("2026-05-01T04:00:00Z")
    assert rows["alice"].last_seen == _utc("2026-05-02T03:00:00Z")
    assert (rows["orders-api"].events, rows["orders-api"].denied) == (1, 0)
    assert int(frame["events"].sum()) == 7
    # ties are ordered by name
    assert list(frame["identity"])[1:] == sorted(list(frame["identity"])[1:])


def test_stats_with_filter_and_limit(populated: Store) -> None:
    frame = populated.stats("outcome", EventFilter(identity="alice"))
    assert dict(zip(frame["outcome"], frame["events"], strict=True)) == {"denied": 2, "success": 1}
    assert len(populated.stats("identity", limit=2)) == 2
    by_source = populated.stats("source")
    assert dict(zip(by_source["source"], by_source["events"], strict=True)) == {
        "vault": 6,
        "k8s": 1,
    }


@pytest.mark.parametrize("by", GROUPABLE)
def test_stats_every_groupable_column(populated: Store, by: str) -> None:
    frame = populated.stats(by)
    assert int(frame["events"].sum()) == 7
    assert int(frame["denied"].sum()) == 2


def test_stats_rejects_unknown_column(populated: Store) -> None:
    with pytest.raises(StoreError, match="event_id") as info:
        populated.stats("event_id")
    assert "identity" in str(info.value)  # names the valid choices
    with pytest.raises(StoreError):
        populated.stats("identity; DROP TABLE events")
    assert populated.count() == 7


# -- dead letters --------------------------------------------------------------------------


def _letter(offset: int, reason: str = "not valid JSON", raw: bytes = b"garbage") -> DeadLetter:
    return DeadLetter("logs/a.log", offset // 10 + 1, offset, reason, raw, "vault", None)


def test_dead_letters_stored_and_deduplicated(store: Store) -> None:
    letters = [
        _letter(0),
        _letter(10, "unexpected shape"),
        DeadLetter("t.json", 1, 0, "bad item", b"{}", "aws", "Records[3]"),
    ]
    store.write_batch([], letters)
    frame = store.dead_letters()
    assert len(frame) == 3
    got = {(r.file, r.line, r.offset, r.reason) for r in frame.itertuples(index=False)}
    assert got == {
        ("logs/a.log", 1, 0, "not valid JSON"),
        ("logs/a.log", 2, 10, "unexpected shape"),
        ("t.json", 1, 0, "bad item"),
    }
    indexed = frame[frame["file"] == "t.json"].iloc[0]
    assert (indexed["idx"], indexed["format"], bytes(indexed["raw"])) == (
        "Records[3]",
        "aws",
        b"{}",
    )
    store.write_batch([], letters)  # the same letters again: nothing new
    assert len(store.dead_letters()) == 3
    store.write_batch([], [_letter(20)])
    assert len(store.dead_letters()) == 4
    assert len(store.dead_letters(limit=2)) == 2
    assert store.count() == 0  # dead letters are not events


def test_events_and_dead_letters_in_one_batch(store: Store) -> None:
    assert store.write_batch([make_row("x")], [_letter(0)]) == 1
    assert store.count() == 1
    assert len(store.dead_letters()) == 1


# -- checkpoints ---------------------------------------------------------------------------


def test_checkpoints_round_trip(store: Store) -> None:
    assert store.checkpoint("missing") is None
    cp = Checkpoint("audit", "/var/log/vault/audit.log", 2049, 2**40 + 5, 123_456, 789)
    store.write_batch([], checkpoints=[cp])
    assert store.checkpoint("audit") == cp
    later = Checkpoint("audit", "/var/log/vault/audit.log", 2049, 2**40 + 6, 0, 1)
    other = Checkpoint("other", "/x", 1, 2, 3, 4)
    store.write_batch([make_row("e")], checkpoints=[later, other])
    assert store.checkpoint("audit") == later
    assert store.checkpoint("other") == other
    assert store.count() == 1


# -- durability ----------------------------------------------------------------------------


def test_data_survives_reopen_read_only(store_factory, populated: Store) -> None:  # noqa: ANN001
    populated.write_batch([], [_letter(0)], [Checkpoint("k", "p", 1, 2, 3, 4)])
    populated.close()
    reader = store_factory(read_only=True)
    reader.open()
    try:
        assert reader.count() == 7
        assert len(reader.dead_letters()) == 1
        assert reader.checkpoint("k") == Checkpoint("k", "p", 1, 2, 3, 4)
    finally:
        reader.close()
    writer = store_factory()
    writer.open()
    try:
        assert writer.write_batch([make_row("e1", "2026-05-01T03:00:00Z")]) == 0
        assert writer.count() == 7
    finally:
        writer.close()


def test_read_only_store_refuses_writes(store_factory, populated: Store) -> None:  # noqa: ANN001
    populated.close()
    reader = store_factory(read_only=True)
    reader.open()
    try:
        with pytest.raises(StoreError):
            reader.write_batch([make_row("new")])
        assert reader.count() == 7
    finally:
        reader.close()


def test_closed_store_raises_store_error(store_factory) -> None:  # noqa: ANN001
    closed = store_factory()
    with pytest.raises(StoreError, match="not open"):
        closed.count()


# -- detection: baselines, state, alerts ---------------------------------------------------


def _baseline(identity: str, events: int) -> tuple[str, bytes]:
    """A baseline document as detectors write them: opaque JSON bytes per identity."""
    return identity, orjson.dumps({"format": 1, "events": events, "secrets": ["secret/x"]})


def _alert(
    identity: str, at: str = T0, evidence: tuple[str, ...] = ("e1",), detector: str = "root_token"
) -> dict:
    """An alert record as `detect_store` hands it to the store."""
    start = to_micros(at) // 3_600_000_000 * 3_600_000_000
    incident = Incident(identity, baseline_version=3)
    incident.add(
        Finding(
            detector,
            identity,
            start,
            start + 3_600_000_000,
            to_micros(at),
            1.0,
            1.0,
            "critical",
            f"{identity} did something at {at}.",
            evidence,
        )
    )
    return incident.alert().model_dump(mode="json")


def test_baselines_round_trip(store: Store) -> None:
    assert store.baselines() == []
    docs = [_baseline("orders-api", 10), _baseline("alice", 3), _baseline("a_b", 1)]
    store.save_detection(docs, {}, [], version=1)
    assert dict(store.baselines()) == dict(docs)
    assert all(isinstance(body, bytes) for _, body in store.baselines())
    assert store.detection_state("meta") is None
    assert len(store.alerts()) == 0
    # Without `replace`, documents are upserted one by one and the others kept.
    store.save_detection([_baseline("alice", 4)], {}, [], version=2)
    assert dict(store.baselines()) == {**dict(docs), "alice": _baseline("alice", 4)[1]}


def test_baselines_of_some_identities(store: Store) -> None:
    docs = [_baseline(name, n) for n, name in enumerate(["orders-api", "alice", "a_b", "axb"])]
    store.save_detection(docs, {}, [], version=1)
    assert dict(store.baselines(["alice", "axb"])) == dict([docs[1], docs[3]])
    assert store.baselines(["a_b"]) == [docs[2]]  # exact names: `_` is no wildcard
    assert store.baselines(["a*"]) == []
    assert store.baselines(["nobody"]) == []
    assert store.baselines([]) == []
    assert len(store.baselines(None)) == 4


def test_replace_drops_previous_baselines(store: Store) -> None:
    store.save_detection([_baseline("old", 1), _baseline("kept", 1)], {}, [], version=1)
    store.save_detection([_baseline("kept", 2), _baseline("new", 2)], {}, [], 2, replace=True)
    assert dict(store.baselines()) == dict([_baseline("kept", 2), _baseline("new", 2)])
    store.save_detection([], {}, [], version=3, replace=True)
    assert store.baselines() == []


def test_detection_state_is_overwritten_by_key(store: Store) -> None:
    assert store.detection_state("meta") is None
    model = bytes(range(256))  # binary state (a pickled model) must survive intact
    store.save_detection([], {"meta": b'{"watermark_us":1}', "model": model}, [], version=1)
    assert store.detection_state("meta") == b'{"watermark_us":1}'
    assert store.detection_state("model") == model
    store.save_detection([], {"meta": b'{"watermark_us":2}'}, [], version=1)
    assert store.detection_state("meta") == b'{"watermark_us":2}'
    assert store.detection_state("model") == model  # keys not written are kept
    assert store.detection_state("incidents") is None


def test_alerts_are_upserted_by_id(store: Store) -> None:
    first = _alert("root", evidence=("e1",))
    other = _alert("alice", "2026-05-01T05:00:00Z", detector="denied_burst")
    store.save_detection([], {}, [first, other], version=1)
    before = store.alerts().set_index("id")
    assert sorted(before.index) == sorted([first["id"], other["id"]])
    row = before.loc[first["id"]]
    assert (row["identity"], row["severity"], row["detectors"]) == (
        "root",
        "critical",
        "root_token",
    )
    assert row["evidence_count"] == 1
    assert orjson.loads(row["body"]) == first

    grown = _alert("root", evidence=("e1", "e2", "e3"))  # the same incident, more evidence
    assert grown["id"] == first["id"]
    store.save_detection([], {}, [grown], version=2)
    after = store.alerts().set_index("id")
    assert len(after) == 2  # one row per id
    row = after.loc[first["id"]]
    assert row["evidence_count"] == 3
    assert orjson.loads(row["body"])["evidence"] == ["e1", "e2", "e3"]
    assert row["created_at"] == before.loc[first["id"], "created_at"]  # first raised then
    assert row["updated_at"] > row["created_at"]
    assert after.loc[other["id"], "updated_at"] == before.loc[other["id"], "updated_at"]


def test_alerts_filtered_by_identity_time_and_limit(store: Store) -> None:
    alerts = [
        _alert("orders/orders-api", "2026-05-01T03:10:00Z"),
        _alert("orders/worker", "2026-05-01T04:10:00Z"),
        _alert("payments/api", "2026-05-01T05:10:00Z"),
        _alert("a_b", "2026-05-01T06:10:00Z"),
        _alert("axb", "2026-05-01T07:10:00Z"),
    ]
    store.save_detection([], {}, alerts, version=1)

    def who(**where: object) -> list[str]:
        return list(store.alerts(**where)["identity"])  # type: ignore[arg-type]

    assert who() == [a["identity"] for a in alerts]  # oldest first
    assert who(identity="orders/*") == ["orders/orders-api", "orders/worker"]
    assert who(identity="*/api") == ["payments/api"]
    assert who(identity="a_*") == ["a_b"]  # `_` is literal
    assert who(identity="payments/api") == ["payments/api"]
    assert who(identity="orders") == []
    assert who(since=_utc("2026-05-01T04:10:00Z"), until=_utc("2026-05-01T06:10:00Z")) == [
        "orders/worker",
        "payments/api",
    ]  # since inclusive, until exclusive
    assert who(limit=2) == ["orders/orders-api", "orders/worker"]
    assert who(identity="orders/*", since=_utc("2026-05-01T04:00:00Z")) == ["orders/worker"]


def test_a_failed_save_stores_nothing(store: Store) -> None:
    store.save_detection([_baseline("kept", 1)], {"meta": b"1"}, [_alert("root")], version=1)
    broken = {**_alert("alice"), "timestamp": "not a time"}
    with pytest.raises(StoreError):
        store.save_detection(
            [_baseline("lost", 2)], {"meta": b"2"}, [_alert("axb"), broken], 2, replace=True
        )
    assert dict(store.baselines()) == dict([_baseline("kept", 1)])
    assert store.detection_state("meta") == b"1"
    assert list(store.alerts()["identity"]) == ["root"]
    store.save_detection([], {"meta": b"3"}, [], version=3)  # and the store still works
    assert store.detection_state("meta") == b"3"


def test_detection_survives_reopen_read_only(store_factory, store: Store) -> None:  # noqa: ANN001
    alert = _alert("root")
    store.save_detection([_baseline("alice", 1)], {"meta": b"m"}, [alert], version=1)
    store.close()
    reader = store_factory(read_only=True)
    reader.open()
    try:
        assert reader.baselines() == [_baseline("alice", 1)]
        assert reader.detection_state("meta") == b"m"
        assert list(reader.alerts()["id"]) == [alert["id"]]
        with pytest.raises(StoreError):
            reader.save_detection([_baseline("bob", 1)], {"meta": b"x"}, [], version=2)
        assert reader.detection_state("meta") == b"m"
    finally:
        reader.close()


# -- the alert outbox: revisions, deliveries, verdicts, folds -------------------------------

NOW = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)


def _later(seconds: float) -> datetime:
    return NOW + pd.Timedelta(seconds=seconds).to_pytimedelta()


def _pending(store: Store, sink: str = "hook", now: datetime = NOW) -> list[tuple[str, int]]:
    return [(p.alert_id, p.revision) for p in store.pending_deliveries(sink, 100, now)]


def _outcome(alert: dict, state: str, revision: int = 1, **fields: object) -> DeliveryOutcome:
    return DeliveryOutcome(alert["id"], revision, state, **fields)  # type: ignore[arg-type]


def test_a_new_alert_is_pending_for_every_sink(store: Store) -> None:
    alert = _alert("root", evidence=("e1", "e2"))
    store.save_detection([], {}, [alert], version=1)
    for sink in ("hook", "splunk"):
        [p] = store.pending_deliveries(sink, 10, NOW)
        assert (p.alert_id, p.revision, p.state, p.attempts, p.delivered_revision) == (
            alert["id"],
            1,
            None,
            0,
            0,
        )
        assert p.alert == alert  # the body as detectors wrote it
        assert (p.resolution, p.repeats, p.folded_into, p.fold_decided) == (None, 0, None, False)
        assert (p.first_failed_at, p.last_status) == (None, None)


def test_revision_grows_only_when_the_alert_changes(store: Store) -> None:
    alert = _alert("root", evidence=("e1",))
    store.save_detection([], {}, [alert], version=1)
    store.save_detection([], {}, [alert], version=1)  # judged again: the same alert
    assert list(store.alerts()["revision"]) == [1]
    store.save_detection([], {}, [_alert("root", evidence=("e1", "e2"))], version=2)
    assert list(store.alerts()["revision"]) == [2]
    assert _pending(store) == [(alert["id"], 2)]


def test_delivered_settles_a_revision_until_the_alert_grows(store: Store) -> None:
    alert = _alert("root", evidence=("e1",))
    store.save_detection([], {}, [alert], version=1)
    store.record_delivery("hook", [_outcome(alert, "delivered", attempts=1, status=200)], NOW)
    assert _pending(store) == []
    assert _pending(store, "splunk") == [(alert["id"], 1)]  # other sinks are independent
    store.save_detection([], {}, [_alert("root", evidence=("e1", "e2"))], version=2)
    [p] = store.pending_deliveries("hook", 10, NOW)
    assert (p.revision, p.state, p.delivered_revision) == (2, "delivered", 1)


def test_a_retry_waits_for_its_time(store: Store) -> None:
    alert = _alert("root")
    store.save_detection([], {}, [alert], version=1)
    failed = _outcome(
        alert,
        "pending",
        attempts=2,
        next_attempt_at=_later(60),
        status=503,
        error="HTTP 503: busy",
        first_failed_at=NOW,
    )
    store.record_delivery("hook", [failed], NOW)
    assert _pending(store, now=_later(59)) == []
    [p] = store.pending_deliveries("hook", 10, _later(60))
    assert (p.state, p.attempts, p.last_status, p.first_failed_at) == ("pending", 2, 503, NOW)


def test_dead_waits_for_a_redrive(store: Store) -> None:
    alert, other = _alert("root"), _alert("alice", "2026-05-01T05:00:00Z")
    store.save_detection([], {}, [alert, other], version=1)
    store.record_delivery(
        "hook",
        [
            _outcome(
                alert,
                "dead",
                attempts=1,
                status=401,
                error="HTTP 401: bad token",
                first_failed_at=NOW,
            ),
            _outcome(other, "dead", attempts=5, status=503, first_failed_at=NOW),
        ],
        NOW,
    )
    assert _pending(store, now=_later(3600)) == []
    assert len(_pending(store, "splunk")) == 2
    store.save_detection([], {}, [_alert("root", evidence=("e1", "e9"))], version=2)
    assert _pending(store, now=_later(3600)) == []  # a new revision does not wake the dead
    assert store.redrive(sink="splunk") == 0
    assert store.redrive(sink="hook", alert_id=alert["id"]) == 1
    [p] = store.pending_deliveries("hook", 10, NOW)
    assert (p.alert_id, p.revision, p.state, p.attempts, p.first_failed_at) == (
        alert["id"],
        2,
        "pending",
        0,
        None,
    )
    assert store.redrive() == 1  # every sink, every alert
    assert store.redrive() == 0


def test_suppressed_settles_like_delivered(store: Store) -> None:
    alert = _alert("root")
    store.save_detection([], {}, [alert], version=1)
    store.record_delivery("pager", [_outcome(alert, "suppressed", error="below min")], NOW)
    assert _pending(store, "pager") == []
    state = store.delivery_state(["pager"]).iloc[0]
    assert (state["state"], state["delivered_revision"], state["last_error"]) == (
        "suppressed",
        1,
        "below min",
    )
    assert pd.isna(state["delivered_at"])


def test_pending_is_oldest_first_and_limited(store: Store) -> None:
    alerts = [_alert(f"svc-{i}", f"2026-05-01T0{i}:10:00Z") for i in range(5)]
    for a in alerts:  # one save each: created in this order
        store.save_detection([], {}, [a], version=1)
    assert [i for i, _ in _pending(store)] == [a["id"] for a in alerts]
    assert [p.alert_id for p in store.pending_deliveries("hook", 2, NOW)] == [
        a["id"] for a in alerts[:2]
    ]
    assert list(store.delivery_state(["hook"], limit=2)["alert_id"]) == [
        a["id"] for a in alerts[:2:-1]
    ]  # newest first, before any delivery record exists


def test_delivery_state_per_alert_and_sink(store: Store) -> None:
    first, second = _alert("root"), _alert("alice", "2026-05-01T05:00:00Z")
    store.save_detection([], {}, [first, second], version=1)
    store.record_delivery("hook", [_outcome(first, "delivered", attempts=3, status=204)], NOW)
    store.record_delivery(
        "splunk",
        [_outcome(first, "dead", attempts=1, status=401, error="x" * 5000, first_failed_at=NOW)],
        NOW,
    )
    frame = store.delivery_state(["hook", "splunk"])
    got = {(r.alert_id, r.sink): r for r in frame.itertuples(index=False)}
    assert len(frame) == 4
    assert list(frame["alert_id"])[:2] == [second["id"]] * 2  # newest alert first
    hook = got[first["id"], "hook"]
    assert (
        hook.state,
        hook.revision,
        hook.delivered_revision,
        hook.attempts,
        hook.last_status,
    ) == ("delivered", 1, 1, 3, 204)
    assert hook.delivered_at is not None and not pd.isna(hook.delivered_at)
    dead = got[first["id"], "splunk"]
    assert (dead.state, dead.last_status, len(dead.last_error)) == ("dead", 401, 2000)
    assert got[second["id"], "hook"].state == "pending"  # no attempt yet is pending
    assert (got[second["id"], "hook"].identity, got[second["id"], "hook"].severity) == (
        "alice",
        "critical",
    )
    assert list(store.delivery_state(["hook", "splunk"], state="dead")["alert_id"]) == [first["id"]]
    assert set(store.delivery_state(["hook"], alert_id=first["id"])["sink"]) == {"hook"}
    limited = store.delivery_state(["hook", "splunk"], limit=1)
    assert len(limited) == 2 and set(limited["alert_id"]) == {second["id"]}  # alerts, not rows
    assert len(store.delivery_state([])) == 0
    with pytest.raises(StoreError, match="valid"):
        store.delivery_state(["hook"], state="lost")


def test_an_unknown_delivery_state_stores_nothing(store: Store) -> None:
    alert = _alert("root")
    store.save_detection([], {}, [alert], version=1)
    with pytest.raises(StoreError, match="lost"):
        store.record_delivery("hook", [_outcome(alert, "delivered"), _outcome(alert, "lost")], NOW)
    assert _pending(store) == [(alert["id"], 1)]


def test_resolving_an_alert_is_a_new_revision(store: Store) -> None:
    alert = _alert("root")
    store.save_detection([], {}, [alert], version=1)
    store.record_delivery("hook", [_outcome(alert, "delivered")], NOW)
    store.resolve_alert(alert["id"], "false_positive", "ana", "a planned rotation", NOW)
    row = store.alerts().iloc[0]
    assert (row["resolution"], row["resolved_by"], row["note"], row["revision"]) == (
        "false_positive",
        "ana",
        "a planned rotation",
        2,
    )
    assert row["resolved_at"] == NOW
    [p] = store.pending_deliveries("hook", 10, NOW)  # the SIEM hears the verdict
    assert (p.revision, p.resolution, p.resolved_by, p.note) == (
        2,
        "false_positive",
        "ana",
        "a planned rotation",
    )
    store.save_detection([], {}, [alert], version=1)  # detection does not undo a verdict
    assert store.alerts().iloc[0]["resolution"] == "false_positive"
    store.resolve_alert(alert["id"], None, "ana", None, NOW)  # reopened
    row = store.alerts().iloc[0]
    assert row["resolution"] is None or pd.isna(row["resolution"])
    assert row["revision"] == 3
    with pytest.raises(StoreError, match="swa-nope"):
        store.resolve_alert("swa-nope", "true_positive", "ana", None, NOW)
    with pytest.raises(StoreError, match="valid"):
        store.resolve_alert(alert["id"], "maybe", "ana", None, NOW)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows with None for every missing value, whatever the column's dtype."""
    return list(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def test_a_fold_verdict_is_kept_once_and_grows_the_open_alert(store: Store) -> None:
    open_, repeat = _alert("svc"), _alert("svc", "2026-05-03T03:00:00Z")
    lone = _alert("other", "2026-05-03T04:00:00Z")
    store.save_detection([], {}, [open_, repeat, lone], version=1)
    store.record_delivery("hook", [_outcome(open_, "delivered")], NOW)
    assert store.decide_fold(repeat["id"], open_["id"], NOW) == open_["id"]
    assert store.decide_fold(repeat["id"], None, NOW) == open_["id"]  # the first verdict wins
    assert store.decide_fold(lone["id"], None, NOW) is None
    assert store.decide_fold(lone["id"], open_["id"], NOW) is None
    pending = {p.alert_id: p for p in store.pending_deliveries("hook", 10, NOW)}
    grown = pending[open_["id"]]
    assert (grown.revision, grown.repeats, grown.fold_decided) == (2, 1, False)
    folded = pending[repeat["id"]]
    assert (folded.folded_into, folded.fold_decided) == (open_["id"], True)
    assert (pending[lone["id"]].folded_into, pending[lone["id"]].fold_decided) == (None, True)
    frame = store.alerts().set_index("id")
    assert (frame.loc[open_["id"], "repeats"], frame.loc[open_["id"], "revision"]) == (1, 2)
    assert frame.loc[repeat["id"], "folded_into"] == open_["id"]
    with pytest.raises(StoreError):
        store.decide_fold(lone["id"], lone["id"], NOW)
    # One alert by its id (`alerts show`, the API's alert page): that row only, as listed.
    for alert in (open_, repeat, lone):
        one = store.alerts(alert_id=alert["id"])
        assert list(one["id"]) == [alert["id"]]
        listed = frame.loc[[alert["id"]]].reset_index()[list(one.columns)]
        assert _records(one) == _records(listed)
    assert store.alerts(alert_id="swa-nope").empty
    assert store.alerts(identity="other", alert_id=open_["id"]).empty  # both must hold


def test_the_outbox_survives_reopen(store_factory, store: Store) -> None:  # noqa: ANN001
    alert = _alert("root")
    store.save_detection([], {}, [alert], version=1)
    store.record_delivery(
        "hook",
        [_outcome(alert, "pending", attempts=1, next_attempt_at=_later(5), first_failed_at=NOW)],
        NOW,
    )
    store.close()
    reader = store_factory(read_only=True)
    reader.open()
    try:
        [p] = reader.pending_deliveries("hook", 10, _later(5))
        assert (p.state, p.attempts) == ("pending", 1)
        with pytest.raises(StoreError):
            reader.record_delivery("hook", [_outcome(alert, "delivered")], NOW)
    finally:
        reader.close()


# -- report aggregates ---------------------------------------------------------------------
# The access review reads only these; each store computes them itself. Times compared at
# whole seconds (stores may keep different sub-second precision); row order is free.

FAR = _utc("2030-01-01T00:00:00Z")


@pytest.fixture
def aggregating(populated: Store) -> Store:
    """The populated store; every backend implements the report aggregates."""
    return populated


def _agg_rows(frame: pd.DataFrame, columns: list[str]) -> set[tuple]:
    """Rows as tuples: missing text as None, timestamps as UTC ISO seconds."""
    out = set()
    for values in frame[columns].itertuples(index=False, name=None):
        row = []
        for value in values:
            if isinstance(value, pd.Timestamp | datetime):
                row.append(pd.Timestamp(value).tz_convert("UTC").floor("s").isoformat())
            elif value is None or (isinstance(value, float) and pd.isna(value)):
                row.append(None)
            else:
                row.append(value.item() if hasattr(value, "item") else value)
        out.add(tuple(row))
    return out


SUMMARY_COLUMNS = ["source", "backend", "identity", "identity_kind", "secret", "action",
                   "operation", "outcome", "events", "first_ts", "last_ts"]  # fmt: skip


def test_access_summary_groups_every_event(aggregating: Store) -> None:
    frame = aggregating.access_summary(None, FAR)
    assert list(frame.columns) == SUMMARY_COLUMNS
    assert int(frame["events"].sum()) == 7
    assert _agg_rows(frame, SUMMARY_COLUMNS) == {
        ("vault", "vault", "orders-api", "service", "secret/apps/orders/db", "read", "read",
         "success", 1, "2026-05-01T03:00:00+00:00", "2026-05-01T03:00:00+00:00"),
        ("vault", "vault", "orders-worker", "service", "secret/apps/orders/db", "read", "read",
         "success", 1, "2026-05-01T03:05:00+00:00", "2026-05-01T03:05:00+00:00"),
        ("vault", "vault", "alice", "human", "secret/apps/payments/stripe", "read", "read",
         "denied", 2, "2026-05-01T04:00:00+00:00", "2026-05-02T03:00:00+00:00"),
        ("vault", "vault", "alice", "human", "secret/apps/", "list", "list", "success", 1,
         "2026-05-01T05:00:00+00:00", "2026-05-01T05:00:00+00:00"),
        ("vault", "vault", "a_b", "service", None, "auth", "update", "success", 1,
         "2026-05-01T06:00:00+00:00", "2026-05-01T06:00:00+00:00"),
        ("k8s", "kubernetes", "axb", "service", "shop/db", "read", "read", "success", 1,
         "2026-05-01T07:00:00+00:00", "2026-05-01T07:00:00+00:00"),
    }  # fmt: skip
    for name in ("first_ts", "last_ts"):
        assert str(frame[name].dt.tz) == "UTC"


def test_access_summary_range_is_half_open(aggregating: Store) -> None:
    frame = aggregating.access_summary(_utc("2026-05-01T04:00:00Z"), _utc("2026-05-01T05:00:00Z"))
    assert _agg_rows(frame, ["identity", "outcome", "events"]) == {("alice", "denied", 1)}
    frame = aggregating.access_summary(_utc("2026-05-01T04:00:00Z"), _utc("2026-05-03T00:00:00Z"))
    denied = frame[frame["outcome"] == "denied"]
    assert _agg_rows(denied, ["events", "first_ts"]) == {(2, "2026-05-01T04:00:00+00:00")}


def test_hourly_activity_per_identity_and_hour(aggregating: Store) -> None:
    frame = aggregating.hourly_activity(None, FAR)
    assert list(frame.columns) == ["identity", "hour", "events", "denied"]
    assert _agg_rows(frame, ["identity", "hour", "events", "denied"]) == {
        ("orders-api", "2026-05-01T03:00:00+00:00", 1, 0),
        ("orders-worker", "2026-05-01T03:00:00+00:00", 1, 0),  # 03:05 is in the 03:00 hour
        ("alice", "2026-05-01T04:00:00+00:00", 1, 1),
        ("alice", "2026-05-01T05:00:00+00:00", 1, 0),
        ("a_b", "2026-05-01T06:00:00+00:00", 1, 0),
        ("axb", "2026-05-01T07:00:00+00:00", 1, 0),
        ("alice", "2026-05-02T03:00:00+00:00", 1, 1),
    }
    later = aggregating.hourly_activity(_utc("2026-05-02T00:00:00Z"), FAR)
    assert _agg_rows(later, ["identity", "events"]) == {("alice", 1)}


def test_source_coverage_per_source_and_day(aggregating: Store) -> None:
    frame = aggregating.source_coverage(None, FAR)
    assert list(frame.columns) == ["source", "backend", "day", "events", "first_ts", "last_ts"]
    assert _agg_rows(frame, list(frame.columns)) == {
        ("vault", "vault", "2026-05-01T00:00:00+00:00", 5, "2026-05-01T03:00:00+00:00",
         "2026-05-01T06:00:00+00:00"),
        ("vault", "vault", "2026-05-02T00:00:00+00:00", 1, "2026-05-02T03:00:00+00:00",
         "2026-05-02T03:00:00+00:00"),
        ("k8s", "kubernetes", "2026-05-01T00:00:00+00:00", 1, "2026-05-01T07:00:00+00:00",
         "2026-05-01T07:00:00+00:00"),
    }  # fmt: skip


def test_secret_history_names_secrets_up_to_until(aggregating: Store) -> None:
    frame = aggregating.secret_history(_utc("2026-05-02T00:00:00Z"))
    columns = ["source", "backend", "secret", "action", "operation", "outcome", "events",
               "first_ts", "last_ts"]  # fmt: skip
    assert list(frame.columns) == columns
    # The login (no secret) and the event after `until` are left out.
    assert _agg_rows(frame, ["secret", "action", "outcome", "events"]) == {
        ("secret/apps/orders/db", "read", "success", 2),
        ("secret/apps/payments/stripe", "read", "denied", 1),
        ("secret/apps/", "list", "success", 1),
        ("shop/db", "read", "success", 1),
    }
    orders = frame[frame["secret"].isin(["secret/apps/orders/db"])]
    assert _agg_rows(orders, ["first_ts", "last_ts"]) == {
        ("2026-05-01T03:00:00+00:00", "2026-05-01T03:05:00+00:00")
    }


@pytest.mark.parametrize(
    ("method", "columns"),
    [
        ("access_summary", SUMMARY_COLUMNS),
        ("hourly_activity", ["identity", "hour", "events", "denied"]),
        ("source_coverage", ["source", "backend", "day", "events", "first_ts", "last_ts"]),
    ],
)
def test_report_aggregates_of_an_empty_range(aggregating: Store, method: str,
                                             columns: list[str]) -> None:  # fmt: skip
    frame = getattr(aggregating, method)(_utc("2030-01-01T00:00:00Z"), _utc("2030-02-01T00:00:00Z"))
    assert list(frame.columns) == columns
    assert len(frame) == 0
    assert list(aggregating.secret_history(_utc("2020-01-01T00:00:00Z")).columns)[:3] == [
        "source",
        "backend",
        "secret",
    ]
