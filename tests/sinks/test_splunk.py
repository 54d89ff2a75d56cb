"""Splunk HTTP Event Collector: auth, event envelope, batching, indexer acknowledgement."""

from __future__ import annotations

import logging
import socket

import receivers
from outbox import alert, deliver, many, save, sink, states

TOKEN = "11111111-2222-3333-4444-555555555555"


def _splunk(url: str, **extra: object) -> object:
    return sink(name="splunk", type="splunk", url=url, token_env="TEST_HEC_TOKEN", **extra)


def test_events_are_batched_with_the_hec_envelope(store, receiver) -> None:
    rx = receiver(receivers.splunk_hec(TOKEN))
    alerts = many(store, 5)
    deliver(store, [_splunk(rx.url, batch_size=3, index="security")])
    assert [r.path for r in rx.requests] == ["/services/collector/event"] * 2
    assert rx.requests[0].headers["authorization"] == f"Splunk {TOKEN}"
    events = rx.state["events"]
    assert len(events) == 5
    first = events[0]
    assert set(first) == {"time", "host", "source", "sourcetype", "index", "event", "fields"}
    assert (first["host"], first["source"], first["sourcetype"], first["index"]) == (
        socket.gethostname(),
        "secretwatch",
        "secretwatch:alert",
        "security",
    )
    by_id = {a["id"]: a for a in alerts}
    for event in events:
        original = by_id[event["fields"]["alert_id"]]
        assert event["event"]["id"] == original["id"]
        assert event["fields"]["revision"] == "1"
        from datetime import datetime

        assert event["time"] == round(datetime.fromisoformat(original["timestamp"]).timestamp(), 6)
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_indexer_acknowledgement_is_awaited(store, receiver) -> None:
    rx = receiver(receivers.splunk_hec(TOKEN, ack_after=2))
    [a] = save(store, alert())
    deliver(store, [_splunk(rx.url, ack=True)])
    paths = [r.path for r in rx.requests]
    assert paths == ["/services/collector/event"] + ["/services/collector/ack"] * 3
    channel = rx.requests[0].headers["x-splunk-request-channel"]
    assert all(r.headers["x-splunk-request-channel"] == channel for r in rx.requests)
    assert rx.requests[1].query == {"channel": channel}
    assert rx.requests[1].json() == {"acks": [0]}
    assert states(store, "splunk") == {a["id"]: "delivered"}


def test_an_unacknowledged_batch_is_sent_again(store, receiver) -> None:
    rx = receiver(receivers.splunk_hec(TOKEN, ack_after=10_000))
    save(store, alert())
    # 0.1 s of the worker's (virtual) time: the retry after the first 300 ms wait for the
    # ack (real) comes 25-50 ms later on that clock, so at least two sends on any machine.
    deliver(store, [_splunk(rx.url, ack=True, ack_timeout="300ms")], timeout=0.1)
    assert rx.requests[0].path == "/services/collector/event"
    sends = [r for r in rx.requests if r.path.endswith("/event")]
    assert len(sends) >= 2  # not acknowledged in time: retried, never counted delivered
    row = store.delivery_state(["splunk"]).iloc[0]
    assert row["state"] == "pending" and "did not acknowledge" in row["last_error"]


def test_an_invalid_token_is_dead_lettered_with_the_fix(
    store, receiver, caplog, monkeypatch
) -> None:
    monkeypatch.setenv("TEST_HEC_TOKEN", "not-the-token")
    rx = receiver(receivers.splunk_hec(TOKEN))
    save(store, alert())
    with caplog.at_level(logging.ERROR):
        deliver(store, [_splunk(rx.url)])
    assert len(rx.requests) == 1
    assert set(states(store, "splunk").values()) == {"dead"}
    assert "HTTP 403" in caplog.text and "Invalid token" in caplog.text
    assert "HTTP Event Collector" in caplog.text and "token_env/token_file" in caplog.text
    assert "not-the-token" not in caplog.text
