"""Microsoft Sentinel: client-credentials token, Logs Ingestion API, token refresh."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import receivers
from outbox import alert, deliver, many, save, sink, states

TENANT, CLIENT = "72f988bf-86f1-41af-91ab-2d7cd011db47", "0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
DCR, STREAM = "dcr-" + "0123456789abcdef" * 2, "Custom-SecretwatchAlerts_CL"


def _sentinel(url: str, **extra: object) -> object:
    return sink(
        name="sentinel",
        type="sentinel",
        endpoint=url,
        authority=url,
        dcr_immutable_id=DCR,
        stream_name=STREAM,
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret_env="TEST_AZURE_SECRET",
        **extra,
    )


def _contract() -> receivers.Contract:
    return receivers.sentinel(TENANT, CLIENT, "azure-client-secret-value", DCR, STREAM)


def test_token_then_batched_rows(store, receiver) -> None:
    rx = receiver(_contract())
    alerts = many(store, 5)
    deliver(store, [_sentinel(rx.url, batch_size=3)])
    token_req, *ingest = rx.requests
    assert token_req.path == f"/{TENANT}/oauth2/v2.0/token"
    form = {k: v[0] for k, v in parse_qs(token_req.body.decode()).items()}
    assert form["grant_type"] == "client_credentials" and form["client_id"] == CLIENT
    assert form["scope"] == "https://monitor.azure.com//.default"
    assert [r.path for r in ingest] == [f"/dataCollectionRules/{DCR}/streams/{STREAM}"] * 2
    assert all(r.query == {"api-version": "2023-01-01"} for r in ingest)
    assert all(r.headers["authorization"].startswith("Bearer ") for r in ingest)
    assert len(rx.state["tokens"]) == 1  # cached across requests
    rows = rx.state["rows"]
    assert sorted(len(r.json()) for r in ingest) == [2, 3]  # two requests at once
    assert all(row["TimeGenerated"] == row["timestamp"] for row in rows)
    assert sorted(rx.received()) == sorted((a["id"], 1) for a in alerts)


def test_a_revoked_token_is_replaced_once(store, receiver) -> None:
    rx = receiver(_contract())
    save(store, alert())
    deliver(store, [_sentinel(rx.url)])
    rx.state["revoked"] = list(rx.state["tokens"])  # e.g. the secret was rotated
    save(store, alert("other", "2026-05-01T05:00:00Z"))
    sentinel = _sentinel(rx.url)
    deliver(store, [sentinel])
    assert len(rx.state["tokens"]) == 2
    assert set(states(store, "sentinel").values()) == {"delivered"}


def test_a_wrong_client_secret_names_the_fix(store, receiver, caplog, monkeypatch) -> None:
    monkeypatch.setenv("TEST_AZURE_SECRET", "expired-secret")
    rx = receiver(_contract())
    save(store, alert())
    with caplog.at_level(logging.ERROR):
        deliver(store, [_sentinel(rx.url)])
    assert set(states(store, "sentinel").values()) == {"dead"}
    assert "invalid_client" in caplog.text and "client_secret_env" in caplog.text
    assert "expired-secret" not in caplog.text


def test_a_wrong_rule_is_404_with_the_fix(store, receiver, caplog) -> None:
    rx = receiver(
        receivers.sentinel(TENANT, CLIENT, "azure-client-secret-value", "dcr-" + "f" * 32, STREAM)
    )
    save(store, alert())
    with caplog.at_level(logging.ERROR):
        deliver(store, [_sentinel(rx.url)])
    assert "HTTP 404" in caplog.text and "dcr_immutable_id" in caplog.text
