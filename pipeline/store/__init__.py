"""Store registry: `type` in the `store` config section picks one."""

from __future__ import annotations

from pipeline.store.base import Checkpoint, EventFilter, Store
from pipeline.store.duckdb import DuckDBStore

__all__ = ["Checkpoint", "EventFilter", "Store", "DuckDBStore", "STORES"]

STORES = {"duckdb": DuckDBStore}
