"""Generic webhook: body, Standard Webhooks headers, idempotency keys, refusals."""

from __future__ import annotations

import logging
import time

import pytest
import receivers
from outbox import SECRET, alert, deliver, many, save, sink, states

from pipeline.sinks.signing import verify
from pipeline.sinks.webhook import message_id


def _hook(url: str, **extra: object) -> object:
    return sink(
        name="hook", type="webhook", url=f"{url}/alerts", secret_env="TEST_WEBHOOK_SECRET", **extra
    )


def test_one_alert_per_request_signed_with_idempotency_key(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    [a] = save(store, alert("root", evidence=("e1", "e2")))
    before = int(time.time())  # the signature's timestamp is the real time, in seconds
    tally = deliver(store, [_hook(rx.url)])
    after = time.time()
    assert tally.counts["delivered"] == 1
    [req] = rx.requests
    assert req.path == "/alerts"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["webhook-id"] == f"{a['id']}.r1"
    assert req.headers["idempotency-key"] == a["id"]
    assert before <= int(req.headers["webhook-timestamp"]) <= after  # signed when sent
    assert req.headers["webhook-signature"].startswith("v1,")
    verify(SECRET, req.headers, req.body)  # what the receiver contract checked too
    body = req.json()
    assert body["type"] == "secretwatch.alert"
    assert body["timestamp"] == a["timestamp"]
    data = body["data"]
    assert {k: data[k] for k in a} == a  # the native alert, whole
    assert (data["revision"], data["repeats"], data["resolution"]) == (1, 0, None)
    assert states(store, "hook") == {a["id"]: "delivered"}


def test_a_grown_incident_is_sent_again_with_the_same_key(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    [a] = save(store, alert("root", evidence=("e1",)))
    deliver(store, [_hook(rx.url)])
    save(store, alert("root", evidence=("e1", "e2")))
    deliver(store, [_hook(rx.url)])
    assert rx.received() == [(a["id"], 1), (a["id"], 2)]
    first, second = rx.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == a["id"]
    assert (first.headers["webhook-id"], second.headers["webhook-id"]) == (
        f"{a['id']}.r1",
        f"{a['id']}.r2",
    )
    assert second.json()["data"]["evidence"] == ["e1", "e2"]


def test_batches_are_one_signed_array(store, receiver) -> None:
    rx = receiver(receivers.webhook(SECRET))
    alerts = many(store, 7)
    deliver(store, [_hook(rx.url, batch_size=5)])
    assert sorted(len(r.json()["data"]) for r in rx.requests) == [2, 5]  # sent at once
    assert all(r.json()["type"] == "secretwatch.alerts" for r in rx.requests)
    assert all(r.headers["webhook-id"].startswith("swb-") for r in rx.requests)
    assert "idempotency-key" not in rx.requests[0].headers  # each item carries its id
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_message_id_is_stable_across_retries() -> None:
    from pipeline.sinks.base import Outgoing

    batch = [Outgoing("swa-a", 1, {}), Outgoing("swa-b", 3, {})]
    assert message_id(batch) == message_id(list(batch))
    assert message_id(batch) != message_id([Outgoing("swa-a", 1, {}), Outgoing("swa-b", 4, {})])


@pytest.mark.parametrize("fmt", ["ecs", "ocsf"])
def test_other_formats(store, receiver, fmt: str) -> None:
    rx = receiver(receivers.webhook(SECRET))
    [a] = save(store, alert())
    deliver(store, [_hook(rx.url, format=fmt)])
    assert rx.received() == [(a["id"], 1)]  # the receiver found id and revision in the shape


def test_bearer_token_and_extra_headers(store, receiver, monkeypatch) -> None:
    monkeypatch.setenv("TEST_HOOK_TOKEN", "bearer-token-1234")
    rx = receiver(receivers.webhook(SECRET))
    save(store, alert())
    deliver(store, [_hook(rx.url, auth_token_env="TEST_HOOK_TOKEN", headers={"X-Team": "secops"})])
    [req] = rx.requests
    assert req.headers["authorization"] == "Bearer bearer-token-1234"
    assert req.headers["x-team"] == "secops"


def test_a_wrong_secret_is_refused_and_dead_lettered_with_the_fix(store, receiver, caplog) -> None:
    rx = receiver(receivers.webhook("whsec_" + "QUJD" * 8))  # the receiver expects another
    [a] = save(store, alert())
    with caplog.at_level(logging.ERROR):
        tally = deliver(store, [_hook(rx.url)])
    assert tally.counts["dead"] == 1 and len(rx.requests) == 1  # no retry on 401
    assert states(store, "hook") == {a["id"]: "dead"}
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "sink 'hook' (webhook) refused 1 alert(s)" in line
    assert "HTTP 401" in line and "secret_env/secret_file" in line
    assert "secretwatch alerts redrive --sink hook" in line
    assert SECRET not in caplog.text
    row = store.delivery_state(["hook"]).iloc[0]
    assert row["last_status"] == 401 and "no signature matches" in row["last_error"]
