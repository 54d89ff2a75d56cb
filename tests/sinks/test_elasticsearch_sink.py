"""Elasticsearch sink: ECS documents over _bulk, idempotent by alert id and revision."""

from __future__ import annotations

import logging

import receivers
from outbox import alert, deliver, many, save, sink, states

API_KEY = "ZXMta2V5LWlkOmVzLWtleS1zZWNyZXQ="


def _es(url: str, **extra: object) -> object:
    return sink(name="es", type="elasticsearch", url=url, api_key_env="TEST_ES_API_KEY", **extra)


def test_ecs_documents_keyed_by_alert_id(store, receiver) -> None:
    rx = receiver(receivers.elasticsearch(API_KEY))
    alerts = many(store, 3)
    deliver(store, [_es(rx.url)])
    [req] = rx.requests
    assert req.headers["authorization"] == f"ApiKey {API_KEY}"
    actions = [line for line in req.body.decode().splitlines()][::2]
    assert all('"version_type":"external_gte"' in a for a in actions)
    assert set(rx.docs) == {("secretwatch-alerts", a["id"]) for a in alerts}
    version, doc = rx.docs[("secretwatch-alerts", alerts[0]["id"])]
    assert version == 1
    assert doc["event"]["kind"] == "alert" and doc["event"]["id"] == alerts[0]["id"]
    assert doc["@timestamp"] == alerts[0]["timestamp"]
    assert doc["user"]["name"] == alerts[0]["identity"]
    assert doc["ecs"]["version"].startswith("8.")


def test_a_new_revision_replaces_the_document(store, receiver) -> None:
    rx = receiver(receivers.elasticsearch(API_KEY))
    [a] = save(store, alert(evidence=("e1",)))
    deliver(store, [_es(rx.url)])
    save(store, alert(evidence=("e1", "e2")))
    deliver(store, [_es(rx.url)])
    assert len(rx.docs) == 1
    version, doc = rx.docs[("secretwatch-alerts", a["id"])]
    assert version == 2 and doc["secretwatch"]["alert"]["evidence"] == ["e1", "e2"]


def test_an_older_revision_answered_409_counts_as_delivered(store, receiver) -> None:
    rx = receiver(receivers.elasticsearch(API_KEY))
    [a] = save(store, alert())
    rx.docs[("secretwatch-alerts", a["id"])] = (5, {"already": "newer"})
    deliver(store, [_es(rx.url)])
    assert states(store, "es") == {a["id"]: "delivered"}
    assert rx.docs[("secretwatch-alerts", a["id"])] == (5, {"already": "newer"})


def test_data_stream_appends_one_document_per_revision(store, receiver) -> None:
    rx = receiver(receivers.elasticsearch(API_KEY))
    [a] = save(store, alert(evidence=("e1",)))
    stream = _es(rx.url, index="logs-secretwatch.alerts-default", data_stream=True)
    deliver(store, [stream])
    save(store, alert(evidence=("e1", "e2")))
    deliver(store, [stream])
    assert set(rx.docs) == {
        ("logs-secretwatch.alerts-default", f"{a['id']}.r1"),
        ("logs-secretwatch.alerts-default", f"{a['id']}.r2"),
    }
    assert all('"create"' in r.body.decode().splitlines()[0] for r in rx.requests)
    store.redrive()  # nothing dead; a resend of r2 (as after a crash) is a 409: delivered
    rx.docs.pop(("logs-secretwatch.alerts-default", f"{a['id']}.r1"))
    assert states(store, "es") == {a["id"]: "delivered"}


def test_per_item_failures(store, receiver, caplog) -> None:
    rx = receiver(receivers.elasticsearch(API_KEY))
    alerts = many(store, 3)
    ok, bad, busy = sorted(a["id"] for a in alerts)  # the outbox's order: saved together
    rx.fail(
        1,
        200,
        body={
            "took": 1,
            "errors": True,
            "items": [
                {"index": {"_id": ok, "status": 201}},
                {
                    "index": {
                        "_id": bad,
                        "status": 400,
                        "error": {
                            "type": "document_parsing_exception",
                            "reason": "failed to parse field [score]",
                        },
                    }
                },
                {
                    "index": {
                        "_id": busy,
                        "status": 429,
                        "error": {
                            "type": "es_rejected_execution_exception",
                            "reason": "queue full",
                        },
                    }
                },
            ],
        },
    )
    with caplog.at_level(logging.WARNING):
        deliver(store, [_es(rx.url)])
    got = states(store, "es")
    assert (got[ok], got[bad], got[busy]) == ("delivered", "dead", "delivered")
    assert set(rx.docs) == {("secretwatch-alerts", busy)}  # the retry of the busy one only
    assert "document_parsing_exception" in caplog.text and "index mapping" in caplog.text


def test_refused_credentials(store, receiver, monkeypatch) -> None:
    monkeypatch.setenv("TEST_ES_API_KEY", "d3Jvbmc=")
    rx = receiver(receivers.elasticsearch(API_KEY))
    save(store, alert())
    deliver(store, [_es(rx.url)])
    row = store.delivery_state(["es"]).iloc[0]
    assert (row["state"], row["last_status"]) == ("dead", 401)
