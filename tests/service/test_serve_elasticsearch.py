"""The serve runtime on the Elasticsearch store (the real server `scripts/services` runs):
a Vault socket sender's events stored with their checkpoint, an alert in the outbox, and
a restart that stores nothing twice."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from waiting import wait_until

from pipeline.config import Config
from pipeline.service.runtime import Service
from pipeline.store.elasticsearch import ElasticsearchStore

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
