"""The delivery worker against real receivers: outages, rate limits, refusals, breakers,
dead letters, re-drives, pacing, and delivery from a thread inside another process.

The worker runs on a `VirtualClock` (outbox.py): its pauses, back-offs and deadlines pass
only while it idles, and the receivers stamp requests with the same clock, so the pacing
checked here is exact and no outcome depends on how loaded the machine is. (`EPS` absorbs
float rounding of the clock's sums, not time.)"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

import receivers
from outbox import (
    SECRET,
    VirtualClock,
    alert,
    deliver,
    deliverer,
    many,
    policy,
    save,
    sink,
    states,
)

from pipeline.sinks.delivery import Deliverer
from pipeline.sinks.embed import start_delivery_thread
from pipeline.store.duckdb import DuckDBStore

EPS = 1e-6


def _hook(url: str, **extra: object) -> object:
    return sink(name="hook", type="webhook", url=url, secret_env="TEST_WEBHOOK_SECRET", **extra)


def test_a_receiver_down_for_a_while_gets_everything_once(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(12, 503)
    alerts = many(store, 20)
    tally = deliver(store, [_hook(rx.url, batch_size=3)], policy(breaker_failures=100))
    got = rx.received()
    assert sorted(set(got)) == sorted((a["id"], 1) for a in alerts)  # every alert arrived
    assert len(got) == len(set(got))  # and none twice
    assert tally.counts["delivered"] == 20 and tally.counts["dead"] == 0
    assert set(states(store, "hook").values()) == {"delivered"}
    retried = store.delivery_state(["hook"])
    assert retried["attempts"].max() > 1  # the outage was really retried through


def test_retry_after_is_honoured_on_429(store, receiver, caplog) -> None:
    clock = VirtualClock()
    rx = receiver(receivers.webhook(SECRET), clock=clock)
    rx.fail(1, 429, {"Retry-After": "1"})
    [a] = save(store, alert())
    with caplog.at_level(logging.WARNING):
        deliver(store, [_hook(rx.url)], clock=clock)
    first, second = rx.requests
    assert second.at - first.at >= 1.0 - EPS  # not before the receiver asked
    assert rx.received() == [(a["id"], 1)]
    assert "pausing 1.0 s as asked" in caplog.text
    assert "circuit open" not in caplog.text  # being busy is not being down


def test_retry_after_as_http_date_on_503(store, receiver) -> None:
    """An HTTP date is read against the real time (the sink's), 30 s ahead: the worker's
    pause is that minus the truncation to whole seconds and the (real) time until the
    answer is read, which a loaded machine may stretch to seconds, never to ten."""
    from email.utils import formatdate

    clock = VirtualClock()
    rx = receiver(receivers.webhook(SECRET), clock=clock)
    rx.fail(1, 503, {"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    save(store, alert())
    deliver(store, [_hook(rx.url)], policy(poll_seconds=0.5), timeout=60, clock=clock)
    first, second = rx.requests
    assert 20 <= second.at - first.at <= 30 + 1  # as asked, not the back-off (50-200 ms)


def test_401_goes_to_dead_letter_at_once_and_redrive_delivers(store, receiver, caplog) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(1, 401, body={"error": "unknown signing key"})
    alerts = many(store, 4)
    with caplog.at_level(logging.ERROR):
        tally = deliver(store, [_hook(rx.url, batch_size=10)])
    assert len(rx.requests) == 1 and tally.counts["dead"] == 4
    frame = store.delivery_state(["hook"])
    assert set(frame["state"]) == {"dead"} and set(frame["attempts"]) == {1}
    assert set(frame["last_status"]) == {401}
    assert "unknown signing key" in frame["last_error"].iloc[0]  # the receiver's answer kept
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "sink 'hook' (webhook) refused 4 alert(s)" in line and "Fix:" in line
    assert "secretwatch alerts redrive --sink hook" in line
    assert deliver(store, [_hook(rx.url)]).counts == {}  # dead letters are not retried
    assert store.redrive(sink="hook") == 4
    deliver(store, [_hook(rx.url, batch_size=10)])
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_a_refused_batch_is_split_to_find_the_bad_alert(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(1, 400, body={"error": "field too long"})
    alerts = many(store, 3)
    deliver(store, [_hook(rx.url, batch_size=3)])
    sizes = [
        len(r.json()["data"]) if r.json()["type"] == "secretwatch.alerts" else 1
        for r in rx.requests
    ]
    assert sizes == [3, 1, 1, 1]  # refused as a whole, then one by one: all accepted
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_circuit_breaker_stops_hammering_a_dead_receiver(store, receiver, caplog) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(1000, 503)
    many(store, 10)
    cfg = policy(
        breaker_failures=3,
        breaker_cooldown=timedelta(seconds=2),
        backoff_base=timedelta(milliseconds=10),
        backoff_max=timedelta(milliseconds=20),
    )
    clock = VirtualClock()
    rx.clock = clock
    worker = deliverer(store, [_hook(rx.url, concurrency=1)], cfg, clock)
    try:
        with caplog.at_level(logging.WARNING):
            worker.drain(clock() + 1.0)
            assert len(rx.requests) == 3  # then open: nothing for the cool-down
            opened = rx.requests[-1].at
            worker.drain(opened + 2.8)
    finally:
        worker.close()
    assert len(rx.requests) == 4  # one probe after the cool-down; it failed: open again
    assert rx.requests[3].at - opened >= 2.0 - EPS
    assert "circuit open after 3 failed requests" in caplog.text
    assert set(states(store, "hook").values()) == {"pending"}  # waiting, not lost


def test_the_breaker_closes_when_the_probe_succeeds(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(2, 503)
    alerts = many(store, 5)
    cfg = policy(breaker_failures=2, breaker_cooldown=timedelta(seconds=0.3))
    clock = VirtualClock()
    rx.clock = clock
    deliver(store, [_hook(rx.url, concurrency=1)], cfg, clock=clock)
    assert sorted(set(rx.received())) == sorted((a["id"], 1) for a in alerts)
    gap = [b.at - a.at for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert max(gap) >= 0.3 - EPS  # the cool-down happened between the failures and the probe


def test_max_attempts_then_dead(store, receiver, caplog) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(1000, 500)
    [a] = save(store, alert())
    with caplog.at_level(logging.ERROR):
        tally = deliver(store, [_hook(rx.url, max_attempts=3)], policy(breaker_failures=100))
    assert len(rx.requests) == 3 and tally.counts["dead"] == 1
    row = store.delivery_state(["hook"]).iloc[0]
    assert (row["state"], row["attempts"], row["last_status"]) == ("dead", 3, 500)
    assert row["last_error"].startswith("gave up after 3 attempts")
    assert "gave up (max_attempts 3" in caplog.text


def test_max_age_then_dead(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    rx.fail(1000, 502)
    save(store, alert())
    deliver(store, [_hook(rx.url, max_age="300ms")], policy(breaker_failures=1000))
    row = store.delivery_state(["hook"]).iloc[0]
    assert row["state"] == "dead" and 1 < row["attempts"] < 50
    assert row["delivered_at"] is None or str(row["delivered_at"]) == "NaT"


def test_unreachable_receiver_is_retried_not_lost(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    url = rx.url
    rx.close()  # nothing listens there now: connection refused
    [a] = save(store, alert())
    tally = deliver(store, [_hook(url, timeout=1)], policy(), timeout=0.5)
    assert tally.counts["pending"] >= 1 and tally.counts["delivered"] == 0
    row = store.delivery_state(["hook"]).iloc[0]
    assert row["state"] == "pending" and "ConnectError" in row["last_error"]
    assert row["last_status"] is None or str(row["last_status"]) in ("nan", "<NA>")
    assert a["id"] == row["alert_id"]


def test_rate_limit_paces_requests(store, receiver) -> None:
    clock = VirtualClock()
    rx = receiver(receivers.webhook(SECRET), clock=clock)
    many(store, 8)
    started = clock()
    deliver(store, [_hook(rx.url, rate_limit={"per_second": 20, "burst": 2})], clock=clock)
    assert len(rx.received()) == 8
    at = [r.at - started for r in rx.requests]
    assert at[:2] == [0.0, 0.0]  # the burst at once (4 requests allowed in flight)
    # then never ahead of 20/s: the i-th request not before (i - 1) / 20 s
    assert all(t >= (i - 1) * 0.05 - EPS for i, t in enumerate(at) if i >= 2)
    assert at[-1] >= 0.3 - EPS


def test_routing_by_severity_and_detector(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    high = alert("a", detector="unexpected_accessor", severity="high")
    low = alert("b", "2026-05-01T04:00:00Z", detector="unusual_time", severity="low")
    root = alert("c", "2026-05-01T05:00:00Z")
    save(store, high, low, root)
    deliver(store, [_hook(rx.url, min_severity="high", detectors=["unexpected_accessor"])])
    assert rx.received() == [(high["id"], 1)]
    got = store.delivery_state(["hook"]).set_index("alert_id")
    assert got.loc[low["id"], "state"] == "suppressed"
    assert "below min_severity high" in got.loc[low["id"], "last_error"]
    assert "not in the sink's detectors list" in got.loc[root["id"], "last_error"]


def test_sinks_are_independent(store, receiver) -> None:
    good, bad = receiver(receivers.webhook(SECRET)), receiver(receivers.webhook(SECRET))
    bad.fail(1000, 503)
    alerts = many(store, 3)
    other = sink(name="other", type="webhook", url=bad.url, secret_env="TEST_WEBHOOK_SECRET")
    deliver(store, [_hook(good.url), other], policy(), timeout=1.0)
    assert sorted(good.received()) == sorted((a["id"], 1) for a in alerts)
    assert set(states(store, "other").values()) == {"pending"}


def test_a_resolution_is_delivered_as_a_new_revision(store, receiver) -> None:
    from datetime import UTC, datetime

    rx = receiver(receivers.webhook(SECRET))
    [a] = save(store, alert())
    deliver(store, [_hook(rx.url)])
    store.resolve_alert(a["id"], "false_positive", "ana", "planned", datetime.now(UTC))
    deliver(store, [_hook(rx.url)])
    assert rx.received() == [(a["id"], 1), (a["id"], 2)]
    data = rx.requests[1].json()["data"]
    assert (data["resolution"], data["resolved_by"], data["note"]) == (
        "false_positive",
        "ana",
        "planned",
    )


def test_secrets_never_reach_logs_or_the_store(store, receiver, caplog) -> None:
    token = "11111111-2222-3333-4444-555555555555"  # TEST_HEC_TOKEN
    rx = receiver(receivers.splunk_hec(token))
    rx.fail(1, 400, body={"text": f"bad request from token {token}", "code": 6})
    save(store, alert())
    splunk = sink(name="splunk", type="splunk", url=rx.url, token_env="TEST_HEC_TOKEN")
    with caplog.at_level(logging.DEBUG):
        deliver(store, [splunk])
    error = store.delivery_state(["splunk"]).iloc[0]["last_error"]
    assert token not in error and "[REDACTED]" in error
    assert token not in caplog.text
    assert token not in repr(Deliverer(store, [splunk], policy()).lanes[0].sink)


def test_delivery_thread_inside_another_process(tmp_path, receiver) -> None:
    """The embedded streaming process: detection writes alerts on its connection, a
    delivery thread with its own connection sends them; `wake` skips the poll."""
    from types import SimpleNamespace

    rx = receiver(receivers.webhook(SECRET))
    path = tmp_path / "s.duckdb"
    writer = DuckDBStore(path)
    writer.open()
    try:
        config = SimpleNamespace(sinks=[_hook(rx.url)], delivery=policy(poll_seconds=60.0))
        handle = start_delivery_thread(lambda: DuckDBStore(path), config)
        try:
            alerts = many(writer, 5)
            handle.wake()
            got = rx.wait_for(5, timeout=30.0)  # woken: well before the 60 s poll
            assert sorted(got) == sorted((a["id"], 1) for a in alerts)
            assert handle.alive and not handle.errors
        finally:
            handle.stop()
        assert not handle.alive
    finally:
        writer.close()


def test_delivery_thread_reports_a_missing_secret_at_start(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    import pytest

    from pipeline.errors import ConfigError

    monkeypatch.delenv("TEST_WEBHOOK_SECRET")
    config = SimpleNamespace(sinks=[_hook("http://127.0.0.1:9")], delivery=policy())
    with pytest.raises(ConfigError, match="TEST_WEBHOOK_SECRET.*secret_file"):
        start_delivery_thread(lambda: DuckDBStore(tmp_path / "s.duckdb"), config)


def test_stop_finishes_the_request_in_flight(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET), slow_answer=0.3)
    many(store, 8)
    worker = Deliverer(store, [_hook(rx.url, concurrency=1)], policy())
    worker.start()
    stop = threading.Event()

    def stop_once_taken() -> None:  # the receiver has a request and will answer in 0.3 s
        deadline = time.monotonic() + 20
        while not rx.requests and time.monotonic() < deadline:
            time.sleep(0.005)
        stop.set()

    threading.Thread(target=stop_once_taken, daemon=True).start()
    worker.run(stop)
    worker.close()
    counts = Counter(states(store, "hook").values())
    assert counts["delivered"] == len(rx.received()) >= 1  # what arrived is recorded
    assert counts["pending"] == 8 - counts["delivered"]  # the rest waits for the next run
