"""Elasticsearch store: the distributed twin of the DuckDB store, with the same interface
and the same results (tests/store/test_store_contract.py runs on both).

- store.py: `ElasticsearchStore`: events, dead letters, checkpoints, detection, alerts;
- cluster.py: the client, its errors, bulk writes with retries, read-modify-write, paging;
- outbox.py: alert revisions, per-sink deliveries, verdicts and folds;
- reports.py: the report aggregations;
- schema.py: field tables (ECS names for events), strict mappings, conversions.
"""

from pipeline.store.elasticsearch.cluster import Cluster, credentials
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
