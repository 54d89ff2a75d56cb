"""`RemoteStore` against the query routes over real HTTP: every read gives the frame the
store itself gives, and every failure is a StoreError that says what to do."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from served_store import served

from pipeline.api import queries
from pipeline.errors import StoreError
from pipeline.store.base import EventFilter
from pipeline.store.remote import RemoteStore

TOKEN = "remote-test-token"  # noqa: S105 - a test token
SINCE, UNTIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
FILTERS = [
    EventFilter(),
    EventFilter(identity="shop/*", action="read"),
    EventFilter(since=SINCE, until=UNTIL, source="vault", outcome="success"),
    EventFilter(secret="secret/shop/orders/db"),  # noqa: S106 - a secret's path
    EventFilter(outcome="denied"),
]


def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(want) or list(want.columns), "an empty frame with no columns proves nothing"
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal as sets of rows: a report aggregate's row order is not part of its contract."""
    keys = list(want.columns)
    same(
        got.sort_values(keys).reset_index(drop=True),
        want.sort_values(keys).reset_index(drop=True),
    )


def test_every_read_is_the_store_read(store_path: Path) -> None:
    with served(store_path, TOKEN) as (url, writer), RemoteStore(url, TOKEN) as remote:
        for where in FILTERS:
            same(remote.events(where), writer.events(where))
            same(remote.events(where, 7, True), writer.events(where, 7, True))
            assert remote.count(where) == writer.count(where)
            for by in ("identity", "secret", "outcome"):
                same(remote.stats(by, where, 5), writer.stats(by, where, 5))
        same(remote.dead_letters(), writer.dead_letters())
        same(remote.alerts(), writer.alerts())
        same(remote.alerts(SINCE, None, "ro*", 3), writer.alerts(SINCE, None, "ro*", 3))
        one = writer.alerts()["id"].iloc[-1]  # `alerts show --server`: that alert only
        same(remote.alerts(alert_id=one), writer.alerts(alert_id=one))
        assert list(remote.alerts(alert_id=one)["id"]) == [one]
        for sinks in (["alerts-file"], ["alerts-file", "siem"], []):
            same(remote.delivery_state(sinks), writer.delivery_state(sinks))
        same(
            remote.delivery_state(["alerts-file"], "pending", limit=2),
            writer.delivery_state(["alerts-file"], "pending", limit=2),
        )
        assert remote.baselines() == writer.baselines()
        assert remote.baselines(["root"]) == writer.baselines(["root"])
        assert remote.baselines([]) == []
        for name in ("access_summary", "hourly_activity", "source_coverage"):
            for since in (SINCE, None):
                same_rows(getattr(remote, name)(since, UNTIL), getattr(writer, name)(since, UNTIL))
        same_rows(remote.secret_history(UNTIL), writer.secret_history(UNTIL))
        assert remote.schema_version() == writer.schema_version()
        assert len(writer.events()) > 500
        assert len(writer.dead_letters()) > 0
        assert len(writer.alerts()) > 1


def test_resolve_goes_to_the_service(store_path: Path) -> None:
    with served(store_path, TOKEN) as (url, writer), RemoteStore(url, TOKEN) as remote:
        alert_id = writer.alerts()["id"].iloc[-1]
        remote.resolve_alert(alert_id, "true_positive", "sam", None, datetime.now(UTC))
        row = writer.alerts().set_index("id").loc[alert_id]
        assert (row["resolution"], row["resolved_by"]) == ("true_positive", "sam")
        with pytest.raises(StoreError, match="HTTP 404: no alert 'swa-missing'"):
            remote.resolve_alert("swa-missing", None, "sam", None, datetime.now(UTC))


def test_a_wrong_token_names_the_fix(store_path: Path) -> None:
    with served(store_path, TOKEN) as (url, _):
        for token in (None, "wrong"):
            with pytest.raises(StoreError) as caught:
                RemoteStore(url, token).open()
            text = str(caught.value)
            assert "refused the API token (HTTP 401)" in text
            assert "$SECRETWATCH_API_TOKEN" in text
            assert TOKEN not in text


def test_a_service_not_running_is_named(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as caught:
        RemoteStore(f"http://127.0.0.1:{port}").open()
    text = str(caught.value)
    assert f"http://127.0.0.1:{port} is not answering" in text
    assert "secretwatch serve" in text


def test_refused_parameters_come_back_as_the_reason(store_path: Path) -> None:
    with served(store_path, None) as (url, _), RemoteStore(url) as remote:
        with pytest.raises(StoreError, match=r"HTTP 400: by: 'ts' is not one of source"):
            remote.stats("ts")


def test_more_rows_than_one_answer_holds(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "MAX_ROWS", 2)
    with served(store_path, None) as (url, writer), RemoteStore(url) as remote:
        for read in (remote.events, remote.alerts, remote.dead_letters):
            with pytest.raises(StoreError, match="answers at most 2 rows at a time: narrow"):
                read()
        same(remote.events(limit=2), writer.events(limit=2))
        with pytest.raises(StoreError, match="HTTP 400: limit: give a whole number from 1 to 2"):
            remote.events(limit=3)


def test_the_service_s_own_work_is_refused(store_path: Path) -> None:
    with served(store_path, None) as (url, _), RemoteStore(url) as remote:
        for call in (
            lambda: remote.write_batch([]),
            lambda: remote.redrive(),
            lambda: remote.detection_state("watermark"),
            lambda: remote.pending_deliveries("s", 1, datetime.now(UTC)),
        ):
            with pytest.raises(StoreError, match="the running service's work"):
                call()
