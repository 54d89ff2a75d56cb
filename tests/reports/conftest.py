"""Fixtures: the generated quarter in a DuckDB store, with its evidence files; the same
quarter in an Elasticsearch store (`quarter_es`)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import quarter_world as world
from elasticsearch import Elasticsearch
from services import ES_DEFAULT

from pipeline.reports import period
from pipeline.reports.run import generate
from pipeline.reports.settings import ReportConfig
from pipeline.store.base import Store
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.elasticsearch import ElasticsearchStore


@pytest.fixture(scope="session")
def quarter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `store.duckdb` (the world's events) and its evidence files."""
    folder = tmp_path_factory.mktemp("quarter")
    with DuckDBStore(folder / "store.duckdb") as store:
        write_quarter(store)
    world.write_evidence(folder)
    return folder


def write_quarter(store: Store) -> None:
    """The world's events and alerts into an open, writable store, with the analyst's
    verdicts: every store-backed quarter fixture is filled by this one function."""
    store.write_batch(world.rows())
    alerts = world.alerts()
    store.save_detection([], {}, alerts, version=1)
    now = datetime(2026, 10, 2, tzinfo=UTC)
    for index, verdict in world.RESOLUTIONS.items():
        store.resolve_alert(alerts[index]["id"], verdict, "analyst", None, now)


@pytest.fixture(scope="session")
def quarter_config(quarter_dir: Path) -> ReportConfig:
    return ReportConfig(
        owners=quarter_dir / "owners.yaml",
        inventory=quarter_dir / "inventory.yaml",
        policies_dir=quarter_dir / "policies",
    )


@pytest.fixture(scope="session")
def quarter_report(quarter_dir: Path, quarter_config: ReportConfig,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    """The generated quarter's report folder (2026Q3)."""
    folder = tmp_path_factory.mktemp("quarter-report") / "2026Q3"
    with DuckDBStore(quarter_dir / "store.duckdb", read_only=True) as store:
        generate(store, "duckdb", period.quarter("2026Q3"), quarter_config, folder)
    return folder


# -- the same quarter in Elasticsearch -----------------------------------------------------


@pytest.fixture(scope="session")
def report_es_url(request: pytest.FixtureRequest) -> str:
    """The test server's URL, by tests/store/conftest.py's rule: the test is skipped when
    nothing listens, unless SECRETWATCH_ES_URL is set explicitly; then `es_url`
    (tests/services.py) checks the server and fails the test if it does not answer."""
    if "SECRETWATCH_ES_URL" not in os.environ:
        where = urlsplit(ES_DEFAULT)
        try:
            socket.create_connection((where.hostname, where.port), timeout=2).close()
        except OSError as exc:
            pytest.skip(f"no Elasticsearch at {ES_DEFAULT} ({exc!r}); run scripts/services")
    return request.getfixturevalue("es_url")


@pytest.fixture(scope="session")
def quarter_es(report_es_url: str) -> Iterator[tuple[str, str]]:
    """(URL, index prefix) of an Elasticsearch store holding what `quarter_dir`'s DuckDB
    store holds (filled by the same `write_quarter`), under an index prefix of its own;
    its indices and template are deleted at the end of the session."""
    prefix = f"swt-report-{uuid.uuid4().hex[:12]}"
    admin = Elasticsearch(report_es_url, request_timeout=30)
    try:
        with ElasticsearchStore(report_es_url, prefix, backoff=0.05) as store:
            write_quarter(store)
        yield report_es_url, prefix
    finally:
        _drop_indices(admin, prefix)
        admin.close()


def _drop_indices(admin: Elasticsearch, prefix: str) -> None:
    """A prefix's indices and events template, by name (wildcard deletes are refused)."""
    names = list(admin.indices.get(index=f"{prefix}-*", expand_wildcards="all"))
    if names:
        admin.indices.delete(index=",".join(names))
    if admin.indices.exists_index_template(name=f"{prefix}-events"):
        admin.indices.delete_index_template(name=f"{prefix}-events")
