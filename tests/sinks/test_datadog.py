"""Datadog: Logs intake (batched) and Events API, DD-API-KEY."""

from __future__ import annotations

import logging

import receivers
from outbox import alert, deliver, many, save, sink, states

KEY = "0123456789abcdef0123456789abcdef"


def _dd(url: str, **extra: object) -> object:
    return sink(name="dd", type="datadog", url=url, api_key_env="TEST_DD_API_KEY", **extra)


def test_logs_intake(store, receiver) -> None:
    rx = receiver(receivers.datadog(KEY))
    alerts = many(store, 3)
    deliver(store, [_dd(rx.url, tags=["env:prod"])])
    [req] = rx.requests
    assert req.path == "/api/v2/logs" and req.headers["dd-api-key"] == KEY
    logs = req.json()
    assert len(logs) == 3
    log = logs[0]
    assert (log["ddsource"], log["service"], log["status"]) == (
        "secretwatch",
        "secretwatch",
        "critical",
    )
    tags = log["ddtags"].split(",")
    assert f"alert_id:{log['alert_id']}" in tags and "env:prod" in tags
    assert "detector:root_token" in tags and log["message"] == log["explanation"]
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_events_intake_one_per_alert(store, receiver) -> None:
    rx = receiver(receivers.datadog(KEY))
    alerts = many(store, 2, severity="medium")
    deliver(store, [_dd(rx.url, intake="events", batch_size=10)])
    assert [r.path for r in rx.requests] == ["/api/v1/events"] * 2
    event = rx.state["events"][0]
    assert event["alert_type"] == "warning" and event["source_type_name"] == "secretwatch"
    assert event["aggregation_key"] in {a["id"] for a in alerts}
    assert len(event["title"]) <= 100


def test_default_urls_follow_the_site() -> None:
    from pipeline.sinks.datadog import DatadogSender

    eu = sink(name="d", type="datadog", site="datadoghq.eu", api_key_env="X")
    assert DatadogSender(eu).url == "https://http-intake.logs.datadoghq.eu/api/v2/logs"
    ev = sink(name="d", type="datadog", site="us3.datadoghq.com", intake="events", api_key_env="X")
    assert DatadogSender(ev).url == "https://api.us3.datadoghq.com/api/v1/events"


def test_a_wrong_key_is_dead_lettered(store, receiver, caplog, monkeypatch) -> None:
    monkeypatch.setenv("TEST_DD_API_KEY", "f" * 32)
    rx = receiver(receivers.datadog(KEY))
    save(store, alert())
    with caplog.at_level(logging.ERROR):
        deliver(store, [_dd(rx.url)])
    assert set(states(store, "dd").values()) == {"dead"}
    assert "HTTP 403" in caplog.text and "belongs to the site" in caplog.text
