"""Store registry: `type` in the `store` config section picks one.

The interface is in base.py: `Store`, and the roles a caller takes one of (`EventLog`,
`DetectionState`, `Outbox`, `ReportSource`); rows.py and outbox_rules.py hold what both
stores share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import StoreError
from pipeline.store.base import (
    Checkpoint,
    DetectionState,
    EventFilter,
    EventLog,
    Outbox,
    ReportSource,
    Store,
)
from pipeline.store.duckdb import DuckDBStore
from pipeline.store.elasticsearch import ElasticsearchStore, lifecycle

if TYPE_CHECKING:
    from pipeline.config import Config

__all__ = [
    "Checkpoint",
    "EventFilter",
    "Store",
    "EventLog",
    "DetectionState",
    "Outbox",
    "ReportSource",
    "DuckDBStore",
    "ElasticsearchStore",
    "STORES",
    "make_store",
    "open_store",
]

STORES: dict[str, type[DuckDBStore] | type[ElasticsearchStore]] = {
    "duckdb": DuckDBStore,
    "elasticsearch": ElasticsearchStore,
}


def make_store(config: Config, store_path: Path | str | None, read_only: bool) -> Store:
    """The configured store, not yet opened. `store_path` (the CLI's --store) overrides
    where it lives: a file for DuckDB, a URL for Elasticsearch."""
    section = config.store
    if section.type == "elasticsearch":
        if store_path is not None:
            section = section.model_copy(update={"url": _as_url(store_path)})
        return ElasticsearchStore.from_config(
            section, read_only=read_only, retention=lifecycle.from_config(config)
        )
    archive = config.retention.archive.path if config.retention.archive else None
    return DuckDBStore(store_path or section.path, read_only=read_only, archive=archive)


def open_store(config: Config, store_path: Path | str | None, read_only: bool) -> Store:
    """The configured store, opened (see `make_store`)."""
    store = make_store(config, store_path, read_only)
    store.open()
    return store


def _as_url(value: Path | str) -> str:
    # A URL that went through Path lost a slash: http://host -> http:/host.
    text = re.sub(r"^(https?):/+", r"\1://", str(value))
    if not re.fullmatch(r"https?://[^\s/@]+/?", text):
        raise StoreError(
            f"--store {value} is not an Elasticsearch URL; the configured store is "
            "Elasticsearch, so pass http(s)://host:port (or leave --store out)"
        )
    return text
