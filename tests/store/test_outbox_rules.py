"""The outbox rules (pipeline/store/outbox_rules.py) on their own: each SQL twin gives what
its function gives on generated inputs (DuckDB applies the twins, Elasticsearch the
functions), and the rules hold over sequences of outcomes."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import StoreError
from pipeline.store import outbox_rules as rules
from pipeline.store.base import DELIVERY_STATES, DeliveryOutcome
from pipeline.store.duckdb import MIGRATIONS
from pipeline.store.elasticsearch.schema import iso

revisions = st.integers(0, 50)
bodies = st.sampled_from(["{}", '{"a":1}', '{"a":2}'])
states = st.sampled_from([None, *DELIVERY_STATES])
moments = st.datetimes(
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2030, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
maybe_moments = st.none() | moments
outcomes = st.builds(
    DeliveryOutcome,
    alert_id=st.just("a"),
    revision=st.integers(1, 50),
    state=st.sampled_from(DELIVERY_STATES),
)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def sql(con: duckdb.DuckDBPyConnection, expression: str, **values: tuple[str, object]) -> object:
    """`expression` evaluated over one row whose columns are `values` (name: (type, value))."""
    columns = ", ".join(f"?::{kind} AS {name}" for name, (kind, _) in values.items())
    row = con.execute(
        f"SELECT {expression} FROM (SELECT {columns}) t",  # noqa: S608 - test-made
        [value for _, value in values.values()],
    ).fetchone()
    assert row is not None
    return row[0]


# -- the SQL twins say what the functions say ---------------------------------------------
@given(revisions, st.none() | revisions)
def test_revision_twin(con: duckdb.DuckDBPyConnection, own: int, repeats: int | None) -> None:
    got = sql(
        con,
        rules.revision_sql("t.own", "t.repeats"),
        own=("BIGINT", own),
        repeats=("BIGINT", repeats),
    )
    assert got == rules.revision(own, repeats or 0)


@given(revisions, bodies, bodies)
def test_upserted_and_resolved_revision_twins(
    con: duckdb.DuckDBPyConnection, own: int, stored: str, body: str
) -> None:
    values = {"own": ("BIGINT", own), "stored": ("VARCHAR", stored), "body": ("VARCHAR", body)}
    upserted = rules.upserted_revision_sql("t.own", "t.stored", "t.body")
    assert sql(con, upserted, **values) == rules.upserted_revision(own, stored, body)
    resolved = rules.resolved_revision_sql("t.own")
    assert sql(con, resolved, **values) == rules.resolved_revision(own)


@given(revisions, outcomes, maybe_moments, moments)
def test_settled_and_delivered_at_twins(
    con: duckdb.DuckDBPyConnection,
    stored: int,
    o: DeliveryOutcome,
    kept: datetime | None,
    now: datetime,
) -> None:
    values = {
        "stored": ("BIGINT", stored),
        "offered": ("BIGINT", rules.offered(o)),
        "kept": ("TIMESTAMPTZ", kept),
        "at": ("TIMESTAMPTZ", rules.delivered_at(None, o.state, now)),
    }
    settled = rules.settled_sql("t.stored", "t.offered")
    assert sql(con, settled, **values) == rules.settled(stored, rules.offered(o))
    delivered = rules.delivered_at_sql("t.kept", "t.at")
    assert sql(con, delivered, **values) == rules.delivered_at(kept, o.state, now)


@given(states, revisions, revisions)
def test_effective_state_twin(
    con: duckdb.DuckDBPyConnection, state: str | None, revision: int, settled: int
) -> None:
    got = sql(
        con,
        rules.effective_state_sql("t.state", "t.revision", "t.settled"),
        state=("VARCHAR", state),
        revision=("BIGINT", revision),
        settled=("BIGINT", settled),
    )
    assert got == rules.effective_state(state, revision, settled)


@given(states, revisions, revisions, maybe_moments, moments)
def test_wanted_twin(
    con: duckdb.DuckDBPyConnection,
    state: str | None,
    revision: int,
    settled: int,
    due: datetime | None,
    now: datetime,
) -> None:
    got = sql(
        con,
        rules.wanted_sql("t.state", "t.revision", "t.settled", "t.due", "t.now"),
        state=("VARCHAR", state),
        revision=("BIGINT", revision),
        settled=("BIGINT", settled),
        due=("TIMESTAMPTZ", due),
        now=("TIMESTAMPTZ", now),
    )
    assert got == rules.wanted(state, revision, settled, due, now)


@given(states, revisions, revisions, maybe_moments, moments)
def test_wanted_on_document_times_as_on_datetimes(
    state: str | None, revision: int, settled: int, due: datetime | None, now: datetime
) -> None:
    """Elasticsearch documents hold times as ISO text, which must order like the times."""
    as_text = rules.wanted(state, revision, settled, iso(due) if due else None, iso(now))
    assert as_text == rules.wanted(state, revision, settled, due, now)


def test_a_new_alert_starts_at_the_first_revision_in_duckdb_too() -> None:
    statements = [s for migration in MIGRATIONS for s in migration]
    assert f"ALTER TABLE alerts ADD COLUMN revision BIGINT DEFAULT {rules.FIRST_REVISION}" in (
        statements
    )


# -- the rules over sequences -------------------------------------------------------------
@given(st.lists(outcomes, max_size=20))
def test_the_settled_revision_never_falls(seq: list[DeliveryOutcome]) -> None:
    settled = 0
    for o in seq:
        after = rules.settled(settled, rules.offered(o))
        assert after >= settled
        if o.state in rules.SETTLING:
            assert after >= o.revision
        else:
            assert after == settled
        settled = after


@given(st.lists(outcomes, max_size=20), moments)
def test_the_delivery_time_is_the_last_delivery(seq: list[DeliveryOutcome], t: datetime) -> None:
    kept: datetime | None = None
    last: datetime | None = None
    for i, o in enumerate(seq):
        now = t + timedelta(seconds=i)
        kept = rules.delivered_at(kept, o.state, now)
        last = now if o.state == "delivered" else last
        assert kept == last


@given(revisions, revisions, maybe_moments, moments)
def test_dead_stays_dead_until_a_redrive(
    revision: int, settled: int, due: datetime | None, now: datetime
) -> None:
    assert rules.effective_state("dead", revision, settled) == "dead"
    assert not rules.wanted("dead", revision, settled, due, now)
    redriven = rules.redriven("dead")
    assert redriven is not None and redriven["state"] == "pending"
    assert redriven["attempts"] == 0 and redriven["next_attempt_at"] is None


@given(states.filter(lambda s: s != "dead"))
def test_only_dead_deliveries_are_redriven(state: str | None) -> None:
    assert rules.redriven(state) is None


@given(st.sampled_from(["delivered", "suppressed"]), revisions, revisions)
def test_a_grown_revision_is_pending_again(state: str, settled: int, growth: int) -> None:
    assert rules.effective_state(state, settled + growth + 1, settled) == "pending"
    assert rules.effective_state(state, settled, settled) == state


@given(revisions, st.integers(0, 10))
def test_each_fold_grows_the_open_alerts_revision(own: int, repeats: int) -> None:
    assert rules.revision(own, repeats + 1) == rules.revision(own, repeats) + 1


@given(st.lists(st.none() | st.sampled_from(["b", "c"]), min_size=1, max_size=5))
def test_the_first_fold_verdict_stands(proposals: list[str | None]) -> None:
    stored: tuple[str | None] | None = None
    for proposed in proposals:
        verdict = rules.fold_verdict(stored, proposed)
        if stored is None:
            stored = (proposed,)
        assert verdict == proposals[0]


def test_resolving_and_reopening() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert rules.verdict("false_positive", "ana", "fine", now) == (
        "false_positive",
        "ana",
        now,
        "fine",
    )
    assert rules.verdict(None, "ana", None, now) == (None, None, None, None)
    assert rules.resolved_revision(3) == 4


@given(st.none() | st.text(max_size=2500))
def test_errors_are_clipped(error: str | None) -> None:
    clipped = rules.clip_error(error)
    assert clipped == ((error or "")[: rules.MAX_ERROR] or None)
    assert clipped is None or 0 < len(clipped) <= rules.MAX_ERROR


def test_bad_values_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(StoreError, match="delivery state 'lost' of alert a; valid: pending"):
        rules.check_outcomes([DeliveryOutcome("a", 1, "lost")])
    with pytest.raises(StoreError, match="delivery state 'lost'; valid: pending"):
        rules.check_state("lost")
    with pytest.raises(StoreError, match="resolution 'maybe'; valid: true_positive"):
        rules.check_resolution("maybe")
    with pytest.raises(StoreError, match="alert a cannot be folded into itself"):
        rules.check_fold("a", "a")
    rules.check_outcomes([DeliveryOutcome("a", 1, s) for s in DELIVERY_STATES])
    rules.check_state(None)
    rules.check_resolution(None)
    rules.check_fold("a", None)


def test_doctests() -> None:
    assert doctest.testmod(rules).failed == 0
