"""The query routes over real HTTP while this process holds the store read-write: exact
frames, bearer tokens, parameters refused with a clear 400, a query that does not wait for
the writer, verdicts recorded, store failures answered without their secrets."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
from served_store import served

from pipeline.api.frames import ARROW_STREAM, arrow_to_frame
from pipeline.errors import StoreError
from pipeline.store.base import EventFilter, Store

TOKEN = "t0ken-for-tests"  # noqa: S105 - a test token
AUTH = {"authorization": f"Bearer {TOKEN}"}


def get(url: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(url + path, params=params, headers=AUTH, timeout=30)  # type: ignore[arg-type]


def test_events_frame_is_the_store_frame(store_path: Path) -> None:
    with served(store_path, TOKEN) as (url, writer):
        answer = get(url, "/api/events", identity="shop/*", outcome="success", newest="true",
                     limit=40)  # fmt: skip
        assert answer.status_code == 200
        assert answer.headers["content-type"] == ARROW_STREAM
        got = arrow_to_frame(answer.content)
        want = writer.events(EventFilter(identity="shop/*", outcome="success"), 40, True)
    assert len(want) == 40
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert str(got["ts"].dtype) == "datetime64[us, UTC]"


def test_token_is_required(store_path: Path) -> None:
    with served(store_path, TOKEN) as (url, _):
        bare = httpx.get(url + "/api/events/count", timeout=30)
        wrong = httpx.get(
            url + "/api/events/count", headers={"authorization": "Bearer nope"}, timeout=30
        )
        refused = httpx.post(url + "/api/alerts/x/resolve", content=b"{}", timeout=30)
        right = get(url, "/api/events/count")
    for answer in (bare, wrong, refused):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in answer.json()["error"]
    assert right.status_code == 200
    assert right.json()["count"] > 500


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/api/events", {"limit": "0"}, "limit: give a whole number from 1"),
        ("/api/events", {"limit": "ten"}, "limit: give a whole number from 1"),
        ("/api/events", {"action": "steal"}, "action: 'steal' is not one of read"),
        ("/api/events", {"since": "yesterday"}, "since: 'yesterday' is not an ISO-8601"),
        ("/api/events", {"newest": "maybe"}, "newest: give true or false"),
        ("/api/events", {"identity": "x" * 1001}, "identity: give 1 to 1000 characters"),
        ("/api/stats", {}, "by: required, one of source"),
        ("/api/stats", {"by": "ts"}, "by: 'ts' is not one of source"),
        ("/api/deliveries", {"state": "lost"}, "state: 'lost' is not one of pending"),
        ("/api/report/access_summary", {}, "until: required"),
    ],
)
def test_bad_parameters_are_400(
    store_path: Path, path: str, params: dict[str, str], says: str
) -> None:
    with served(store_path, None) as (url, _):
        answer = httpx.get(url + path, params=params, timeout=30)
    assert answer.status_code == 400
    assert says in answer.json()["error"]


def test_unknown_things_are_404(store_path: Path) -> None:
    with served(store_path, None) as (url, _):
        alert = httpx.get(url + "/api/alerts/swa-nope", timeout=30)
        aggregate = httpx.get(url + "/api/report/everything?until=2026-04-01", timeout=30)
        resolve = httpx.post(
            url + "/api/alerts/swa-nope/resolve",
            json={"resolution": "true_positive", "by": "me"},
            timeout=30,
        )
    assert alert.status_code == resolve.status_code == aggregate.status_code == 404
    assert "no alert 'swa-nope'" in alert.json()["error"]
    assert "no alert 'swa-nope'" in resolve.json()["error"]
    assert "no report aggregate 'everything'" in aggregate.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 400, "the body must be a JSON object"),
        (b'{"resolution": "maybe", "by": "me"}', 400, "resolution: one of true_positive"),
        (b'{"resolution": null}', 400, "the body must be {"),
        (b'{"resolution": null, "by": ""}', 400, "by: who decided"),
        (b'{"resolution": null, "by": "me", "note": 3}', 400, "note: text of at most"),
        (b'{"by": "' + b"x" * (70 << 10) + b'"}', 413, "is over"),
    ],
)
def test_bad_verdicts_are_refused(store_path: Path, body: bytes, status: int, says: str) -> None:
    with served(store_path, None) as (url, writer):
        alert_id = writer.alerts()["id"][0]
        answer = httpx.post(f"{url}/api/alerts/{alert_id}/resolve", content=body, timeout=30)
        assert writer.alerts()["resolution"].isna().all()
    assert answer.status_code == status
    assert says in answer.json()["error"]


def test_resolve_is_recorded_with_a_new_revision(store_path: Path) -> None:
    with served(store_path, TOKEN) as (url, writer):
        before = writer.alerts().iloc[0]
        answer = httpx.post(
            f"{url}/api/alerts/{before['id']}/resolve",
            json={"resolution": "false_positive", "by": "ana", "note": "a known batch job"},
            headers=AUTH,
            timeout=30,
        )
        after = writer.alerts().iloc[0]
        shown = get(url, f"/api/alerts/{before['id']}", sink="alerts-file").json()
    assert answer.status_code == 200
    assert answer.json() == {"id": before["id"], "resolution": "false_positive", "by": "ana"}
    assert (after["resolution"], after["resolved_by"], after["note"]) == (
        "false_positive",
        "ana",
        "a known batch job",
    )
    assert after["revision"] == before["revision"] + 1
    assert shown["resolution"] == "false_positive"
    assert shown["body"]["id"] == before["id"]
    assert [d["sink"] for d in shown["deliveries"]] == ["alerts-file"]
    assert shown["deliveries"][0]["state"] == "pending"


def test_a_query_does_not_wait_for_the_writer(store_path: Path) -> None:
    """The writer holds an open transaction with rows not yet committed: the API answers at
    once, from the last committed state, and sees the rows once they are committed."""
    with served(store_path, None) as (url, writer):
        before = writer.count()
        writer.con.execute("BEGIN")
        writer.con.execute("INSERT INTO events SELECT * REPLACE (event_id || '-copy' AS event_id) "
                           "FROM events")  # fmt: skip
        started = time.monotonic()
        during = httpx.get(url + "/api/events/count", timeout=120).json()["count"]
        took = time.monotonic() - started
        writer.con.execute("COMMIT")
        after = httpx.get(url + "/api/events/count", timeout=30).json()["count"]
    assert during == before
    assert after == 2 * before
    assert took < 60.0  # waiting for the writer would have meant the 120 s timeout


def test_identities_and_baselines(store_path: Path) -> None:
    with served(store_path, None) as (url, writer):
        identities = httpx.get(url + "/api/identities", timeout=30).json()
        stats = writer.stats("identity")
        stored = dict(writer.baselines())
        one = httpx.get(url + "/api/baselines", params={"identity": "root"}, timeout=30).json()
        every = httpx.get(url + "/api/baselines", timeout=30).json()
    assert [i["identity"] for i in identities] == list(stats["identity"])
    assert [i["events"] for i in identities] == list(stats["events"])
    assert {i["identity"] for i in identities if i["baseline"]} == set(stored) & set(
        stats["identity"]
    )
    assert one == {"root": orjson.loads(stored["root"])}
    assert every == {k: orjson.loads(v) for k, v in stored.items()}


def test_report_aggregates_are_the_store_ones(store_path: Path) -> None:
    since, until = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    with served(store_path, None) as (url, writer):
        for name in ("access_summary", "hourly_activity", "source_coverage"):
            answer = httpx.get(
                f"{url}/api/report/{name}",
                params={"since": since.isoformat(), "until": until.isoformat()},
                timeout=30,
            )
            want = getattr(writer, name)(since, until)
            assert len(want) > 0, name
            same_rows(arrow_to_frame(answer.content), want)
        history = httpx.get(f"{url}/api/report/secret_history", params={"until": "2026-04-01"})
        same_rows(arrow_to_frame(history.content), writer.secret_history(until))


def same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal as sets of rows: a report aggregate's row order is not part of its contract."""
    keys = list(want.columns)
    pd.testing.assert_frame_equal(
        got.sort_values(keys).reset_index(drop=True),
        want.sort_values(keys).reset_index(drop=True),
        check_exact=True,
    )


def test_a_failing_store_is_a_503_without_secrets(store_path: Path) -> None:
    def broken() -> Store:
        raise StoreError(
            "store /x cannot be opened: token hvs.CAESIAbcdefghijklmnopqrstuv rejected"
        )

    with served(store_path, None, open_reader=broken) as (url, _):
        answer = httpx.get(url + "/api/events/count", timeout=30)
        bad = httpx.get(url + "/api/events/count?source=mainframe", timeout=30)
    assert bad.status_code == 400  # parameters are checked before a store is opened
    assert answer.status_code == 503
    assert "cannot be opened" in answer.json()["error"]
    assert "hvs.CAES" not in answer.text


def test_any_other_failure_is_a_clean_500(
    store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Store:
        raise RuntimeError("driver broke near hvs.CAESIAbcdefghijklmnopqrstuv")

    with served(store_path, None, open_reader=broken) as (url, _):
        answer = httpx.get(url + "/api/stats?by=identity", timeout=30)
    assert answer.status_code == 500
    assert answer.json()["error"].startswith("the query failed: RuntimeError: driver broke")
    assert "hvs.CAES" not in answer.text
    logged = [r.getMessage() for r in caplog.records if r.name == "pipeline.api.queries"]
    assert logged == [f"event=query_failed path=/api/stats error={answer.json()['error'][18:]}"]
    assert "hvs.CAES" not in caplog.text
    assert "Traceback" not in caplog.text
