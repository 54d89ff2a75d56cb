"""The three HTTP collectors inside a real `secretwatch serve` subprocess: what senders
were answered 2xx for is in the store, bad input is a stored dead letter naming the
collector, and after kill -9 and a restart every acknowledged event is stored once."""

from __future__ import annotations

import base64
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
from http_senders import FIXTURES, ingest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
from servehelp import Served, vault_pairs, write_config  # noqa: E402
from waiting import wait_until  # noqa: E402

from pipeline.store.duckdb import DuckDBStore  # noqa: E402

K8S_EVENTS = FIXTURES / "k8s_audit" / "secretwatch__generated" / "service_account_access.jsonl"
VAULT_LOG = FIXTURES / "vault" / "vault-1.21.4-dev" / "audit.log"
GCP_ENTRIES = FIXTURES / "gcp_audit" / "secretwatch__generated" / "generated.jsonl"
TOKEN = "serve-http-collectors-token-0123456789"  # noqa: S105 - a test token
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_COLLECTOR_TOKEN", TOKEN)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(headers=AUTH, timeout=30) as client:
        yield client


def collectors() -> list[dict[str, str]]:
    token = {"token_env": "TEST_COLLECTOR_TOKEN"}
    return [
        {"type": "k8s_webhook", "listen": "http://127.0.0.1:0/k8s-audit", **token},
        {"type": "http_ndjson", "listen": "http://127.0.0.1:0/ndjson", "format": "vault", **token},
        {"type": "gcp_pubsub_push", "listen": "http://127.0.0.1:0/pubsub", **token},
    ]


def event_list(items: list[object]) -> bytes:
    return orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})


def pubsub(entry: object, message_id: int) -> bytes:
    message = {"data": base64.b64encode(orjson.dumps(entry)).decode(), "messageId": str(message_id)}
    return orjson.dumps({"message": message, "subscription": "projects/p/subscriptions/s"})


def lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def plain(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Rows with None for every missing value, whatever the column's dtype."""
    return list(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


def stored_store(folder: Path) -> tuple[pd.DataFrame, dict[str, list[str]], list[str]]:
    """(events, event ids per source, dead letters' `file`) in a stopped service's store."""
    with DuckDBStore(folder / "serve.duckdb", read_only=True) as store:
        events = store.events()
        dead = list(store.dead_letters()["file"])
    ids = {str(s): sorted(events[events["source"] == s]["event_id"]) for s in set(events["source"])}
    return events, ids, dead


def test_three_collectors_in_serve_store_what_was_acknowledged(
    tmp_path: Path, http: httpx.Client
) -> None:
    served = Served(write_config(tmp_path, None, collectors=collectors()), tmp_path)
    try:
        k8s, ndjson, gcp = (
            served.collectors[n] for n in ("k8s_webhook", "http_ndjson", "gcp_pubsub_push")
        )
        assert k8s.endswith("/k8s-audit") and ":0/" not in k8s
        wait_until(lambda: served.get("/readyz").status_code == 200, what="ready")
        k8s_events = [orjson.loads(line) for line in lines(K8S_EVENTS)]
        assert http.post(k8s, content=event_list(k8s_events)).status_code == 200
        assert http.post(ndjson, content=b"\n".join(lines(VAULT_LOG))).status_code == 200
        entries = [orjson.loads(line) for line in lines(GCP_ENTRIES)]
        for n, entry in enumerate(entries + entries[:2]):  # two redelivered
            assert http.post(gcp, content=pubsub(entry, n)).status_code == 200
        for url in (k8s, ndjson, gcp):
            assert http.post(url, content=b"not json").status_code == 400
        assert httpx.post(k8s, content=event_list(k8s_events)).status_code == 401

        direct = {
            "k8s": ingest([K8S_EVENTS], "k8s", tmp_path / "k.duckdb"),
            "vault": ingest([VAULT_LOG], "vault", tmp_path / "v.duckdb"),
            "gcp": ingest([GCP_ENTRIES], "gcp", tmp_path / "g.duckdb"),
        }
        for name, source in (
            ("k8s_webhook", "k8s"),
            ("http_ndjson", "vault"),
            ("gcp_pubsub_push", "gcp"),
        ):
            want = direct[source].summary.stored
            wait_until(
                lambda n=name, s=source, w=want: (
                    served.metric("secretwatch_events_stored_total", collector=n, source=s) == w
                ),
                what=f"{name} stored",
            )
    finally:
        code = served.terminate()
    assert code == 0, served.stderr()
    events, ids, dead = stored_store(tmp_path)
    for source, result in direct.items():
        assert ids[source] == sorted(result.events["event_id"]), source
        mine = events[events["source"] == source].reset_index(drop=True)
        # every column as `ingest` stores it (an all-null column's dtype follows its store)
        assert plain(mine) == plain(result.events), source
    for name, path in (
        ("k8s_webhook", "/k8s-audit"),
        ("http_ndjson", "/ndjson"),
        ("gcp_pubsub_push", "/pubsub"),
    ):
        assert (
            sum(f.startswith(f"collector {name}: POST {path} from 127.0.0.1:") for f in dead) == 1
        )
    assert TOKEN not in served.stderr()


def test_kill_9_then_restart_stores_every_acknowledged_event_once(
    tmp_path: Path, http: httpx.Client
) -> None:
    config = write_config(tmp_path, None, collectors=collectors())
    served = Served(config, tmp_path)
    template = orjson.loads(lines(K8S_EVENTS)[0])
    gcp_template = orjson.loads(lines(GCP_ENTRIES)[1])
    acked_k8s: list[str] = []
    acked_gcp: list[str] = []
    acked_vault: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send_k8s(sender: int) -> None:
        for batch in range(400):  # bounded: the kill comes long before
            ids = [f"kill-{sender}-{batch}-{i}" for i in range(50)]
            body = event_list([{**template, "auditID": a} for a in ids])
            try:
                answer = http.post(served.collectors["k8s_webhook"], content=body)
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                with lock:
                    acked_k8s.extend(ids)
            if stop.is_set():
                return

    def send_gcp() -> None:
        for n in range(5000):
            entry = {**gcp_template, "insertId": f"kill-gcp-{n}"}
            try:
                answer = http.post(served.collectors["gcp_pubsub_push"], content=pubsub(entry, n))
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                with lock:
                    acked_gcp.append(entry["insertId"])
            if stop.is_set():
                return

    def send_vault() -> None:
        for batch in range(2000):
            pairs = vault_pairs(20, tag=batch)  # request and response, in one POST
            ids = [orjson.loads(line)["request"]["id"] for line in pairs[::2]]
            try:
                answer = http.post(served.collectors["http_ndjson"], content=b"\n".join(pairs))
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                with lock:
                    acked_vault.extend(ids)
            if stop.is_set():
                return

    senders = [threading.Thread(target=send_k8s, args=(i,), daemon=True) for i in range(4)]
    senders += [threading.Thread(target=f, daemon=True) for f in (send_gcp, send_vault)]
    for thread in senders:
        thread.start()
    try:
        wait_until(
            lambda: (
                served.metric("secretwatch_collector_records_total", collector="k8s_webhook") > 3000
                and len(acked_gcp) > 20
            ),
            timeout=60,
            what="mid-stream",
        )
    finally:
        served.kill()
        stop.set()
    for thread in senders:
        thread.join(30)
        assert not thread.is_alive()
    assert acked_k8s and acked_gcp and acked_vault

    again = Served(config, tmp_path)
    try:
        wait_until(lambda: again.get("/readyz").status_code == 200, timeout=60, what="ready")
        wait_until(
            lambda: (
                again.metric("secretwatch_spool_depth_bytes", collector="k8s_webhook") == 0
                and again.metric("secretwatch_spool_depth_bytes", collector="gcp_pubsub_push") == 0
            ),
            timeout=60,
            what="spools drained",
        )
    finally:
        code = again.terminate()
    assert code == 0, again.stderr()
    assert len(acked_k8s) < 4 * 400 * 50  # the kill came mid-stream
    _, ids, _ = stored_store(tmp_path)
    assert len(ids["k8s"]) == len(set(ids["k8s"]))
    assert set(acked_k8s) <= set(ids["k8s"])
    assert set(acked_gcp) <= set(ids["gcp"])
    assert set(acked_vault) <= set(ids["vault"])
