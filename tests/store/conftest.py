"""Store fixtures, parametrized over backends: add a factory to BACKENDS and every contract
test in tests/store/test_store_contract.py runs against the new backend too."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.store.base import Store
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.elasticsearch import ElasticsearchStore

# `scripts/services start elasticsearch` serves here; `scripts/services env` exports it.
ES_URL = os.environ.get("SECRETWATCH_ES_URL", "http://127.0.0.1:19200")

# A factory makes an unopened store living under the given folder; calling it again with
# the same folder must give the same store (to test durability and read-only opening).
StoreFactory = Callable[..., Store]


def _duckdb(folder: Path, read_only: bool = False) -> Store:
    return DuckDBStore(folder / "store.duckdb", read_only=read_only)


def es_prefix(folder: Path) -> str:
    """A test's own index prefix, the same for the same folder."""
    return "swt-" + hashlib.sha256(str(folder).encode()).hexdigest()[:16]


def _elasticsearch(folder: Path, read_only: bool = False) -> Store:
    return ElasticsearchStore(ES_URL, es_prefix(folder), read_only, backoff=0.05)


def drop_indices(admin: Elasticsearch, prefix: str) -> None:
    """Delete a prefix's indices and template (by name: wildcard deletes are refused)."""
    names = list(admin.indices.get(index=f"{prefix}-*", expand_wildcards="all"))
    if names:
        admin.indices.delete(index=",".join(names))
    if admin.indices.exists_index_template(name=f"{prefix}-events"):
        admin.indices.delete_index_template(name=f"{prefix}-events")


BACKENDS = [
    pytest.param(_duckdb, id="duckdb"),
    pytest.param(_elasticsearch, id="elasticsearch"),
]


@pytest.fixture(scope="session")
def es_admin() -> Iterator[Elasticsearch]:
    """A client on the test server. Skips when none answers, unless SECRETWATCH_ES_URL was
    set explicitly: then a missing server is a failure, not a skip."""
    client = Elasticsearch(ES_URL, request_timeout=30, max_retries=0)
    try:
        client.cluster.health()
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable server"
        client.close()
        message = f"no Elasticsearch at {ES_URL} ({type(exc).__name__}); run scripts/services"
        if "SECRETWATCH_ES_URL" in os.environ:
            pytest.fail(message)
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    make = request.param
    admin = request.getfixturevalue("es_admin") if make is _elasticsearch else None

    def factory(read_only: bool = False) -> Store:
        return make(tmp_path, read_only=read_only)

    if admin is None:
        yield factory
        return
    drop_indices(admin, es_prefix(tmp_path))
    try:
        yield factory
    finally:
        drop_indices(admin, es_prefix(tmp_path))


@pytest.fixture
def store(store_factory: StoreFactory) -> Iterator[Store]:
    opened = store_factory()
    opened.open()
    try:
        yield opened
    finally:
        opened.close()
