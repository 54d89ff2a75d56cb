"""Store registry: `type` in the `store` config section picks one.

The interface is in base.py: `Store`, and the roles a caller takes one of (`EventLog`,
`DetectionState`, `Outbox`, `ReportSource`); rows.py and outbox_rules.py hold what both
stores share.

A backend is imported when a store of its type is made (or `STORES` is read), not with
this package: DuckDB, the Elasticsearch client and pandas take most of a second to load,
which a command reading through the service's API never needs."""

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

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.store.duckdb import DuckDBStore
    from pipeline.store.elasticsearch import ElasticsearchStore

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


def stores() -> dict[str, type[DuckDBStore] | type[ElasticsearchStore]]:
    """The registry, each backend imported now."""
    from pipeline.store.duckdb import DuckDBStore
    from pipeline.store.elasticsearch import ElasticsearchStore

    return {"duckdb": DuckDBStore, "elasticsearch": ElasticsearchStore}


def __getattr__(name: str) -> object:
    """`STORES` and the backend classes, imported on first use. Any other name (such as a
    submodule not imported yet) is not found here, so importing one loads no backend."""
    if name not in ("STORES", "DuckDBStore", "ElasticsearchStore"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    registry = stores()
    if name == "STORES":
        return registry
    return next(cls for cls in registry.values() if cls.__name__ == name)


def make_store(config: Config, store_path: Path | str | None, read_only: bool) -> Store:
    """The configured store, not yet opened. `store_path` (the CLI's --store) overrides
    where it lives: a file for DuckDB, a URL for Elasticsearch."""
    section = config.store
    if section.type == "elasticsearch":
        from pipeline.store.elasticsearch import ElasticsearchStore, lifecycle

        if store_path is not None:
            section = section.model_copy(update={"url": _as_url(store_path)})
        return ElasticsearchStore.from_config(
            section, read_only=read_only, retention=lifecycle.from_config(config)
        )
    from pipeline.store.duckdb import DuckDBStore

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
