"""The `actor` event field (issue 17 item 5: the person behind an SSO or assumed-role
session): stored and read back by both stores, and added to stores made before it existed
(DuckDB: migration 5, tests/store/test_duckdb.py; Elasticsearch: schema version 2, here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import ES_URL, StoreFactory, drop_indices, es_prefix
from elasticsearch import Elasticsearch
from test_store_contract import make_row

from pipeline.store.elasticsearch import EVENT_FIELDS, SCHEMA_VERSION, ElasticsearchStore
from pipeline.store.elasticsearch.schema import EVENT_TYPES, mapping


def test_actor_is_stored_and_read_back(store_factory: StoreFactory) -> None:
    with store_factory() as store:
        store.write_batch(
            [make_row("sso", actor="bobson.dugnutt"), make_row("app")]  # app: no person
        )
        events = store.events().set_index("event_id")
    assert events.loc["sso", "actor"] == "bobson.dugnutt"
    assert pd.isna(events.loc["app", "actor"])


@pytest.fixture
def prefix(es_admin: Elasticsearch, tmp_path: Path) -> Iterator[str]:
    name = es_prefix(tmp_path)
    drop_indices(es_admin, name)
    yield name
    drop_indices(es_admin, name)


def test_a_version_1_elasticsearch_store_gains_actor(prefix: str, es_admin: Elasticsearch) -> None:
    """A store written before `actor` (template, a month's index and meta at version 1,
    strict mappings without the field) takes events with an actor once opened writable."""
    old_types = {k: v for k, v in EVENT_TYPES.items() if k != EVENT_FIELDS["actor"]}
    old = mapping(old_types, fields={k: v for k, v in EVENT_FIELDS.items() if k != "actor"})
    es_admin.indices.put_index_template(
        name=f"{prefix}-events",
        index_patterns=[f"{prefix}-events-*"],
        priority=500,
        template={"settings": {"number_of_shards": 1}, "mappings": old},
    )
    es_admin.indices.create(index=f"{prefix}-events-2026.05")
    es_admin.index(
        index=f"{prefix}-meta", id="schema_version", document={"value": "1"}, refresh=True
    )
    with ElasticsearchStore(ES_URL, prefix, backoff=0.01) as store:
        assert store.schema_version() == SCHEMA_VERSION == 2
        store.write_batch([make_row("old"), make_row("new", actor="alice@example.com")])
        events = store.events().set_index("event_id")
    assert events.loc["new", "actor"] == "alice@example.com"
    assert pd.isna(events.loc["old", "actor"])
    index = f"{prefix}-events-2026.05"
    got = es_admin.indices.get_mapping(index=index)[index]["mappings"]
    assert got["dynamic"] == "strict"
    assert got["properties"]["secretwatch"]["properties"]["actor"] == {"type": "keyword"}
