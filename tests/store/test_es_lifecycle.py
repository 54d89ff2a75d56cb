"""The event indices' lifecycle (pipeline/store/elasticsearch/lifecycle.py) on the real test
server: the ILM policy, template and index settings where the cluster runs ILM, and
secretwatch's own expiry where it does not (the minimal distribution scripts/services runs
has no ILM module: the ILM tests skip there and say so)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ES_URL, drop_indices, es_prefix
from elasticsearch import Elasticsearch
from test_store_contract import make_row

from pipeline.store.elasticsearch import ElasticsearchStore, lifecycle
from pipeline.store.elasticsearch.lifecycle import Lifecycle

NOW = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)


def _drop(admin: Elasticsearch, prefix: str) -> None:
    drop_indices(admin, prefix)
    name = lifecycle.policy_name(prefix)
    if _has_ilm(admin) and name in admin.ilm.get_lifecycle().body:
        admin.ilm.delete_lifecycle(name=name)


def _has_ilm(admin: Elasticsearch) -> bool:
    found = admin.nodes.info(node_id="_local", metric="plugins").body["nodes"].values()
    return any(m["name"] == "x-pack-ilm" for node in found for m in node["modules"])


@pytest.fixture
def prefix(tmp_path: Path, es_admin: Elasticsearch) -> Iterator[str]:
    name = es_prefix(tmp_path)
    _drop(es_admin, name)
    yield name
    _drop(es_admin, name)


def _open(prefix: str, retention: Lifecycle = lifecycle.DEFAULT) -> ElasticsearchStore:
    store = ElasticsearchStore(ES_URL, prefix, backoff=0.05, retention=retention)
    store.open()
    return store


def test_policy_deletes_after_the_archiver_when_an_archive_is_configured() -> None:
    assert lifecycle.policy(Lifecycle(400))["phases"]["delete"]["min_age"] == "400d"
    archived = lifecycle.policy(Lifecycle(400, archived=True))
    assert archived["phases"]["delete"]["min_age"] == f"{400 + lifecycle.ARCHIVE_MARGIN_DAYS}d"
    assert set(archived["phases"]) == {"hot", "delete"}


def test_retention_comes_from_the_config() -> None:
    assert lifecycle.from_config(None) == Lifecycle(lifecycle.DEFAULT_HOT_DAYS)
    assert lifecycle.from_config(SimpleNamespace()) == Lifecycle(400)
    config = SimpleNamespace(retention=SimpleNamespace(hot_days=90, archive=None))
    assert lifecycle.from_config(config) == Lifecycle(90, archived=False)
    config = SimpleNamespace(retention=SimpleNamespace(hot_days=90, archive={"path": "a"}))
    assert lifecycle.from_config(config) == Lifecycle(90, archived=True)


def test_month_indices_originate_when_their_month_ends() -> None:
    assert lifecycle.month_end("p-events-2025.02") == datetime(2025, 3, 1, tzinfo=UTC)
    assert lifecycle.month_settings("p-events-2025.12") == {
        "index.lifecycle.origination_date": int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1000
    }


# -- clusters with ILM ---------------------------------------------------------------------
@pytest.fixture
def ilm(es_admin: Elasticsearch) -> Elasticsearch:
    if not _has_ilm(es_admin):
        pytest.skip(f"the Elasticsearch at {ES_URL} has no ILM module (minimal distribution)")
    return es_admin


def test_open_installs_the_policy_the_template_and_indices_carry(
    ilm: Elasticsearch, prefix: str
) -> None:
    with _open(prefix, Lifecycle(120, archived=True)) as store:
        store.write_batch([make_row("e1", "2025-03-30T10:00:00Z")])
    name = lifecycle.policy_name(prefix)
    policy = ilm.ilm.get_lifecycle(name=name)[name]["policy"]
    assert set(policy["phases"]) == {"hot", "delete"}
    assert policy["phases"]["delete"]["min_age"] == "150d"
    template = ilm.indices.get_index_template(name=f"{prefix}-events")["index_templates"][0]
    assert template["index_template"]["template"]["settings"]["index"]["lifecycle"] == {
        "name": name
    }
    explain = ilm.ilm.explain_lifecycle(index=f"{prefix}-events-2025.03")["indices"]
    entry = explain[f"{prefix}-events-2025.03"]
    assert entry["managed"] is True and entry["policy"] == name
    settings = ilm.indices.get_settings(index=f"{prefix}-events-2025.03").body
    origination = settings[f"{prefix}-events-2025.03"]["settings"]["index"]["lifecycle"]
    assert int(origination["origination_date"]) == int(
        datetime(2025, 4, 1, tzinfo=UTC).timestamp() * 1000
    )


def test_install_is_idempotent_and_adopts_indices_made_without_it(
    ilm: Elasticsearch, prefix: str
) -> None:
    with _open(prefix):
        pass
    name = lifecycle.policy_name(prefix)
    version = ilm.ilm.get_lifecycle(name=name)[name]["version"]
    ilm.indices.create(index=f"{prefix}-events-2024.01")  # as a store before lifecycles
    ilm.indices.put_settings(
        index=f"{prefix}-events-2024.01", settings={"index.lifecycle.name": None}
    )
    with _open(prefix):
        pass
    assert ilm.ilm.get_lifecycle(name=name)[name]["version"] == version
    entry = ilm.ilm.explain_lifecycle(index=f"{prefix}-events-2024.01")["indices"]
    assert entry[f"{prefix}-events-2024.01"]["policy"] == name
    with _open(prefix, Lifecycle(30)):
        pass  # a changed retention updates the policy
    policy = ilm.ilm.get_lifecycle(name=name)[name]
    assert policy["version"] == version + 1
    assert policy["policy"]["phases"]["delete"]["min_age"] == "30d"


# -- clusters without ILM ------------------------------------------------------------------
@pytest.fixture
def no_ilm(es_admin: Elasticsearch) -> Elasticsearch:
    if _has_ilm(es_admin):
        pytest.skip(f"the Elasticsearch at {ES_URL} runs ILM: expiry is its job there")
    return es_admin


def test_without_ilm_indices_carry_no_lifecycle_settings(
    no_ilm: Elasticsearch, prefix: str
) -> None:
    with _open(prefix) as store:
        assert store.cluster.ilm is False
        assert store.write_batch([make_row("e1", "2025-03-30T10:00:00Z")]) == 1
    template = no_ilm.indices.get_index_template(name=f"{prefix}-events")["index_templates"][0]
    assert "lifecycle" not in template["index_template"]["template"]["settings"]["index"]


def test_expire_deletes_months_past_the_hot_retention(no_ilm: Elasticsearch, prefix: str) -> None:
    with _open(prefix, Lifecycle(400)) as store:
        store.write_batch(
            [make_row("old", "2025-03-01T10:00:00Z"), make_row("new", "2025-04-01T00:00:00Z")]
        )
        # 2025-03 ended 2025-04-01, 396 days before NOW: kept; a day later it is not.
        assert store.expire(NOW) == []
        assert store.expire(datetime(2026, 5, 6, tzinfo=UTC)) == [f"{prefix}-events-2025.03"]
        assert [r for r in store.events()["event_id"]] == ["new"]
        store.write_batch([make_row("late", "2025-03-02T10:00:00Z")])  # made again
        assert store.count() == 2


def test_expire_with_an_archive_waits_for_the_archiver(
    no_ilm: Elasticsearch, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    later = datetime(2026, 7, 1, tzinfo=UTC)  # past 400 + 30 days for 2025-03
    with _open(prefix, Lifecycle(400, archived=True)) as store:
        store.write_batch(
            [make_row("a", "2025-03-01T10:00:00Z"), make_row("b", "2025-03-02T10:00:00Z")]
        )
        assert store.expire(datetime(2026, 6, 1, tzinfo=UTC)) == []  # within the margin
        assert caplog.text == ""
        assert store.expire(later) == []  # events not archived yet: kept
        assert "still holds 2 events not archived yet" in caplog.text
        store.drop_day(date(2025, 3, 1), "vault", 1)
        assert store.expire(later) == []
        store.drop_day(date(2025, 3, 2), "vault", 1)
        assert store.expire(later) == [f"{prefix}-events-2025.03"]
    assert not no_ilm.indices.exists(index=f"{prefix}-events-2025.03")
