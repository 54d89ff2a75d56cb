"""The serve runtime on the Elasticsearch store (the real server `scripts/services` runs):
a Vault socket sender's events stored with their checkpoint, an alert in the outbox, a
restart that stores nothing twice, and a dead letter a sender was answered 4xx for still
stored after a kill -9 while the store was away."""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from elasticsearch import Elasticsearch
from servehelp import Served, write_config
from waiting import wait_until

from pipeline.config import Config
from pipeline.service.runtime import Service
from pipeline.store.elasticsearch import ElasticsearchStore

sys.path.insert(0, str(Path(__file__).parents[1] / "bus"))
from kafkatools import CuttableProxy  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "fixtures" / "vault" / "audit.jsonl"


@pytest.fixture
def prefix(es_url: str, tmp_path: Path) -> Iterator[str]:
    name = "swt-serve-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    admin = Elasticsearch(es_url, request_timeout=30)

    def drop() -> None:
        names = list(admin.indices.get(index=f"{name}-*", expand_wildcards="all"))
        if names:
            admin.indices.delete(index=",".join(names))
        if admin.indices.exists_index_template(name=f"{name}-events"):
            admin.indices.delete_index_template(name=f"{name}-events")

    drop()
    yield name
    drop()
    admin.close()


def send(service: Service, data: bytes) -> None:
    address = getattr(service.collectors[0], "address")  # noqa: B009 - the vault collector's
    host, port = address[len("tcp://") :].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)


def test_serve_on_elasticsearch_stores_once_across_a_restart(
    es_url: str, prefix: str, tmp_path: Path
) -> None:
    cfg = Config.model_validate(
        {
            "store": {"type": "elasticsearch", "url": es_url, "index_prefix": prefix},
            "collectors": [{"type": "vault_socket", "listen": "tcp://127.0.0.1:0"}],
            "spool": {"path": str(tmp_path / "spool")},
            "ingest": {"follow_poll_seconds": 0.1},
            "sinks": [],
        }
    )
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    stored = ("vault_socket", "vault")
    service = Service(cfg)
    service.start()
    try:
        wait_until(service.ready)
        send(service, b"".join(lines[:20]))
        wait_until(lambda: service.metrics.stored.labels(*stored)._value.get() == 10)
    finally:
        assert service.stop() == []
    again = Service(cfg)
    again.start()
    try:
        send(again, b"".join(lines[20:]))
        wait_until(lambda: again.metrics.stored.labels(*stored)._value.get() == 7)
        wait_until(lambda: again.metrics.alerts._value.get() >= 1)  # judged beside storing
    finally:
        assert again.stop() == []
    with ElasticsearchStore(es_url, prefix, read_only=True) as store:
        events = store.events()
        assert len(events) == events["event_id"].nunique() == 17
        assert len(store.alerts()) >= 1


def test_a_dead_letter_answered_400_survives_a_kill_9_while_the_store_is_away(
    es_url: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the door's dead letters waited in memory for the store, so a service killed
    meanwhile lost them, though the sender had its 400 (and a queue collector had deleted
    the message): no trace of that input was left."""
    monkeypatch.setenv("TEST_COLLECTOR_TOKEN", "serve-door-token-0123456789")
    target = urlsplit(es_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 9200)
    store = {"type": "elasticsearch", "url": f"http://127.0.0.1:{proxy.port}"}
    collector = {"type": "http_ndjson", "listen": "http://127.0.0.1:0/ndjson"}
    config = write_config(
        tmp_path,
        None,
        store={**store, "index_prefix": prefix},
        collectors=[{**collector, "token_env": "TEST_COLLECTOR_TOKEN"}],
    )
    served = Served(config, tmp_path)
    try:
        wait_until(lambda: served.get("/readyz").status_code == 200, what="ready")
        proxy.cut()  # the store is away: nothing reaches it from now on
        answer = httpx.post(
            served.collectors["http_ndjson"],
            content=b"garbage, not an audit line",
            headers={"authorization": "Bearer serve-door-token-0123456789"},
            timeout=30,
        )
        assert answer.status_code == 400
        served.kill()
    finally:
        if served.proc.poll() is None:
            served.kill()
        proxy.restore()
    again = Served(config, tmp_path)
    try:
        admin = Elasticsearch(es_url, request_timeout=30)

        def stored() -> list[str]:
            admin.indices.refresh(index=f"{prefix}-*")
            with ElasticsearchStore(es_url, prefix, read_only=True) as read:
                return list(read.dead_letters()["file"])

        wait_until(lambda: len(stored()) == 1, what="the dead letter stored")
        [where] = stored()
        assert where.startswith("collector http_ndjson: POST /ndjson from 127.0.0.1:")
        admin.close()
        assert again.terminate() == 0
    finally:
        if again.proc.poll() is None:
            again.kill()
        proxy.close()
