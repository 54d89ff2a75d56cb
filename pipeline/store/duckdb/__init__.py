"""Embedded store: one DuckDB file, no server, the default. Same interface and results as
the Elasticsearch store (tests/store/test_store_contract.py runs on both).

- store.py: `DuckDBStore`: the connection's lifecycle, one transaction per write;
- connection.py: opening the file with explained errors, transactions;
- schema.py: the migrations and applying them;
- events.py: events, dead letters, checkpoints (`EventLog`);
- detection.py: baselines, detection state, alerts from detection (`DetectionState`);
- outbox.py: alert revisions, per-sink deliveries, verdicts and folds (`Outbox`);
- reports.py: the report aggregations (`ReportSource`).
"""

from pipeline.store.duckdb.schema import MIGRATIONS, SCHEMA_VERSION
from pipeline.store.duckdb.store import DuckDBStore

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "DuckDBStore"]
