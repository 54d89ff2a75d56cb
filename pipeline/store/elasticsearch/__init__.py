"""Elasticsearch store: the distributed twin of the DuckDB store, with the same interface
and the same results (tests/store/test_store_contract.py runs on both).

- store.py: `ElasticsearchStore`: lifecycle, schema, the order of writes, refreshes;
- cluster.py: the client, its errors, bulk writes with retries, read-modify-write, paging;
- events.py: events, dead letters, checkpoints (`EventLog`);
- detection.py: alerts from detection, baselines, detection state (`DetectionState`);
- outbox.py: alerts, their revisions, per-sink deliveries, verdicts and folds (`Outbox`);
- reports.py: the report aggregations (`ReportSource`);
- schema.py: field tables (ECS names for events), strict mappings, conversions.
"""

from pipeline.store.elasticsearch.cluster import Cluster
from pipeline.store.elasticsearch.credentials import credentials
from pipeline.store.elasticsearch.schema import (
    ALERT_FIELDS,
    EVENT_FIELDS,
    KINDS,
    SCHEMA_VERSION,
)
from pipeline.store.elasticsearch.store import ElasticsearchStore

__all__ = [
    "ALERT_FIELDS",
    "EVENT_FIELDS",
    "KINDS",
    "SCHEMA_VERSION",
    "Cluster",
    "ElasticsearchStore",
    "credentials",
]
