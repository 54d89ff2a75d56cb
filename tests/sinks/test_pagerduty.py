"""PagerDuty Events API v2: triggers for high severity, dedup by alert id, resolves."""

from __future__ import annotations

from datetime import UTC, datetime

import receivers
from outbox import alert, deliver, save, sink, states

KEY = "R0123456789abcdef0123456789abcde"


def _pd(url: str, **extra: object) -> object:
    return sink(
        name="pd",
        type="pagerduty",
        url=f"{url}/v2/enqueue",
        routing_key_env="TEST_PD_ROUTING_KEY",
        **extra,
    )


def test_high_severity_triggers_with_the_alert_id_as_dedup_key(store, receiver) -> None:
    rx = receiver(receivers.pagerduty(KEY))
    high = alert("a", severity="high", detector="enumeration")
    medium = alert("b", "2026-05-01T05:00:00Z", severity="medium", detector="unusual_time")
    save(store, high, medium)
    deliver(store, [_pd(rx.url)])
    [event] = rx.state["events"]
    assert (event["event_action"], event["dedup_key"], event["routing_key"]) == (
        "trigger",
        high["id"],
        KEY,
    )
    payload = event["payload"]
    assert payload["severity"] == "error" and payload["component"] == "a"
    assert payload["summary"].startswith("secretwatch high: enumeration on a")
    assert payload["custom_details"]["id"] == high["id"]
    assert states(store, "pd") == {high["id"]: "delivered", medium["id"]: "suppressed"}


def test_a_grown_alert_reuses_the_key_and_a_resolution_resolves(store, receiver) -> None:
    rx = receiver(receivers.pagerduty(KEY))
    [a] = save(store, alert(evidence=("e1",)))
    deliver(store, [_pd(rx.url)])
    save(store, alert(evidence=("e1", "e2")))
    deliver(store, [_pd(rx.url)])
    store.resolve_alert(a["id"], "true_positive", "ana", None, datetime.now(UTC))
    deliver(store, [_pd(rx.url)])
    actions = [(e["event_action"], e["dedup_key"]) for e in rx.state["events"]]
    assert actions == [("trigger", a["id"]), ("trigger", a["id"]), ("resolve", a["id"])]


def test_an_invalid_routing_key_is_a_400_dead_letter(store, receiver, monkeypatch) -> None:
    monkeypatch.setenv("TEST_PD_ROUTING_KEY", "not-a-key")
    rx = receiver(receivers.pagerduty(KEY))
    save(store, alert())
    deliver(store, [_pd(rx.url)])
    row = store.delivery_state(["pd"]).iloc[0]
    assert (row["state"], row["last_status"]) == ("dead", 400)
    assert "routing_key is invalid" in row["last_error"]
    assert "not-a-key" not in row["last_error"]


def test_resolve_false_leaves_the_page_alone(store, receiver) -> None:
    rx = receiver(receivers.pagerduty(KEY))
    [a] = save(store, alert())
    deliver(store, [_pd(rx.url, resolve=False)])
    store.resolve_alert(a["id"], "false_positive", "ana", None, datetime.now(UTC))
    deliver(store, [_pd(rx.url, resolve=False)])
    assert [e["event_action"] for e in rx.state["events"]] == ["trigger"]
    assert states(store, "pd") == {a["id"]: "delivered"}
