"""Routing and the suppression window: repeats folded into the open alert with a count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import receivers
from outbox import SECRET, alert, deliver, policy, save, sink, states

from pipeline.sinks.router import fold_target

DAY2, DAY5, LATE = "2026-05-03T03:00:00Z", "2026-05-06T03:00:00Z", "2026-05-20T03:00:00Z"


def _pending(store, alert_id: str):
    return next(
        p for p in store.pending_deliveries("x", 100, datetime.now(UTC)) if p.alert_id == alert_id
    )


def test_fold_target_rules(store) -> None:
    week = timedelta(days=7)
    first = alert(
        "svc", detector="unusual_time", severity="medium", more=(("new_source", "medium"),)
    )  # two agree: high
    assert first["severity"] == "high"
    repeat = alert("svc", DAY2, detector="unusual_time", severity="medium")
    new_detector = alert("svc", DAY2, detector="enumeration", severity="medium")
    more_severe = alert("svc", DAY5, detector="unusual_time", severity="critical")
    too_late = alert("svc", LATE, detector="unusual_time", severity="medium")
    other_identity = alert("svc2", DAY2, detector="unusual_time", severity="medium")
    save(store, first, repeat, new_detector, more_severe, too_late, other_identity)

    def target(a: dict) -> str | None:
        return fold_target(store, _pending(store, a["id"]), week)

    assert target(repeat) == first["id"]
    assert target(new_detector) is None  # says something new
    assert target(more_severe) is None  # worse than what was reported
    assert target(too_late) is None  # 14 days after the last alert it could repeat
    assert target(other_identity) is None
    assert target(first) is None  # nothing before it
    assert fold_target(store, _pending(store, repeat["id"]), timedelta(0)) is None  # off
    store.resolve_alert(first["id"], "true_positive", "ana", None, datetime.now(UTC))
    assert target(repeat) is None  # a resolved alert is closed: repeats are new alerts


def test_repeats_fold_into_the_open_alert_for_every_sink(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    path_sink = sink(name="file", type="jsonl", path=str(store.path.parent / "a.jsonl"))
    hook = sink(name="hook", type="webhook", url=rx.url, secret_env="TEST_WEBHOOK_SECRET")
    first = alert("svc", detector="unusual_time", severity="medium")
    save(store, first)
    cfg = policy(suppression_window="7d")
    deliver(store, [hook, path_sink], cfg)
    second = alert("svc", DAY2, detector="unusual_time", severity="medium")
    third = alert("svc", DAY5, detector="unusual_time", severity="medium")
    save(store, second, third)
    deliver(store, [hook, path_sink], cfg)
    assert rx.received() == [(first["id"], 1), (first["id"], 3)]  # the count, not 2 alerts
    last = rx.requests[-1].json()["data"]
    assert last["repeats"] == 2 and last["id"] == first["id"]
    for name in ("hook", "file"):
        got = states(store, name)
        assert (got[second["id"]], got[third["id"]], got[first["id"]]) == (
            "suppressed",
            "suppressed",
            "delivered",
        )
    frame = store.alerts().set_index("id")
    assert frame.loc[second["id"], "folded_into"] == first["id"]
    assert frame.loc[first["id"], "repeats"] == 2


def test_a_folded_alert_that_grows_something_new_is_delivered(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    hook = sink(name="hook", type="webhook", url=rx.url, secret_env="TEST_WEBHOOK_SECRET")
    cfg = policy(suppression_window="7d")
    first = alert("svc", detector="unusual_time", severity="medium")
    second = alert("svc", DAY2, detector="unusual_time", severity="medium")
    save(store, first, second)
    deliver(store, [hook], cfg)
    assert states(store, "hook")[second["id"]] == "suppressed"
    grown = alert(
        "svc", DAY2, detector="unusual_time", severity="medium", more=(("enumeration", "high"),)
    )
    assert grown["id"] == second["id"]
    save(store, grown)
    deliver(store, [hook], cfg)
    assert (second["id"], 2) in rx.received()
