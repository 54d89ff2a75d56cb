"""How long events stay in the Elasticsearch store: an index lifecycle (ILM) policy for the
monthly event indices, installed with the events template, and the same rule applied by
secretwatch itself on clusters without ILM.

The event indices are per month (`{prefix}-events-YYYY.MM`), not rolled over, so the policy
is a hot phase and a delete phase. ILM counts an index's age from its origination date,
which each month index gets at creation: the first instant of the following month, when the
month's newest event may have happened. A month is deleted once its newest event is
`delete_after_days` old, however late the month was ingested (a backfill of last year does
not start a fresh 400 days).

The rule that keeps evidence: with an archive configured, ILM deletes only
`ARCHIVE_MARGIN_DAYS` after the hot retention, and the archiver (`secretwatch archive`)
removes each day itself once it is in the archive, at `hot_days`. ILM is then only the
cleanup of emptied indices and the backstop of a store whose archiver stopped: an archiver
that stays stopped longer than the margin lets ILM delete events not archived yet, so
`serve` runs it daily and `archive` reports what it left. Without an archive, the hot
retention is the retention: ILM deletes at `hot_days`.

Clusters without ILM (the minimal distribution the tests run, OpenSearch) get no policy and
no lifecycle settings (they would refuse the unknown setting); `expire` applies the rule
instead, deleting a month index only once it is empty when an archive is configured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from elasticsearch import ApiError

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.store.elasticsearch.cluster import Cluster

log = logging.getLogger(__name__)

DEFAULT_HOT_DAYS = 400  # when the config has no `retention.hot_days`
ARCHIVE_MARGIN_DAYS = 30  # ILM deletes this long after the archiver should have archived


@dataclass(frozen=True)
class Lifecycle:
    """The retention the event indices follow."""

    hot_days: int = DEFAULT_HOT_DAYS
    archived: bool = False  # an archive is configured: deletion waits for the archiver
    margin_days: int = ARCHIVE_MARGIN_DAYS

    @property
    def delete_after_days(self) -> int:
        """Days after a month's end before its index is deleted.

        >>> Lifecycle(400).delete_after_days, Lifecycle(400, archived=True).delete_after_days
        (400, 430)
        """
        return self.hot_days + (self.margin_days if self.archived else 0)


DEFAULT = Lifecycle()


def from_config(config: Config | None) -> Lifecycle:
    """The lifecycle a config asks for: `retention.hot_days` and whether
    `retention.archive` is set; defaults where the config has no retention section."""
    retention = getattr(config, "retention", None)
    if retention is None:
        return DEFAULT
    hot_days = getattr(retention, "hot_days", None) or DEFAULT_HOT_DAYS
    return Lifecycle(int(hot_days), archived=getattr(retention, "archive", None) is not None)


def policy_name(prefix: str) -> str:
    return f"{prefix}-events"


def policy(lifecycle: Lifecycle) -> dict[str, Any]:
    """The ILM policy body.

    >>> policy(Lifecycle(400, archived=True))["phases"]["delete"]
    {'min_age': '430d', 'actions': {'delete': {}}}
    """
    return {
        "_meta": {
            "managed_by": "secretwatch",
            "hot_days": lifecycle.hot_days,
            "archived": lifecycle.archived,
        },
        "phases": {
            "hot": {"min_age": "0ms", "actions": {"set_priority": {"priority": 100}}},
            "delete": {
                "min_age": f"{lifecycle.delete_after_days}d",
                "actions": {"delete": {}},
            },
        },
    }


def month_end(index: str) -> datetime:
    """The first instant after the month of an event index name (`...-events-YYYY.MM`).

    >>> month_end("p-events-2026.12").isoformat()
    '2027-01-01T00:00:00+00:00'
    """
    year, month = (int(part) for part in index.rsplit("-", 1)[1].split("."))
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def month_settings(index: str) -> dict[str, Any]:
    """Settings a new month index gets on a cluster with ILM: its origination date."""
    return {"index.lifecycle.origination_date": int(month_end(index).timestamp() * 1000)}


def ilm_available(cluster: Cluster) -> bool:
    """Whether the cluster runs ILM (the default distribution's `x-pack-ilm` module; minimal
    distributions lack it). Asked of the node's modules: an ILM request to a cluster without
    it fails in a way the client takes for a broken node."""
    found = cluster.client.nodes.info(
        node_id="_local", metric="plugins", filter_path="nodes.*.modules.name"
    )
    nodes = found.body.get("nodes", {}).values()
    return any(m.get("name") == "x-pack-ilm" for node in nodes for m in node.get("modules", []))


def install(cluster: Cluster, lifecycle: Lifecycle) -> bool:
    """Put the policy, make the events template name it and give every existing month
    index it too (a store made before lifecycles, or an index made between the template
    and this call). Idempotent: nothing is written when all is in place. Returns whether
    ILM manages the indices; sets `cluster.ilm` to say so."""
    cluster.ilm = ilm_available(cluster)
    if not cluster.ilm:
        return False
    client, name = cluster.client, policy_name(cluster.prefix)
    body = policy(lifecycle)
    try:
        current = client.ilm.get_lifecycle(name=name)[name]["policy"]
    except ApiError as exc:
        if exc.status_code != 404:
            raise
        current = None
    if current is None or _differs(current, body):
        client.ilm.put_lifecycle(name=name, policy=body)
    _template_names(cluster, name)
    _indices_name(cluster, name)
    return True


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    phases = current.get("phases", {})
    return bool(
        current.get("_meta") != wanted["_meta"]
        or phases.get("delete", {}).get("min_age") != wanted["phases"]["delete"]["min_age"]
        or set(phases) != set(wanted["phases"])
    )


def _template_names(cluster: Cluster, name: str) -> None:
    """Add the policy to the events template (store.py puts it), keeping the rest."""
    template_name = f"{cluster.prefix}-events"
    client = cluster.client
    if not client.indices.exists_index_template(name=template_name):
        return  # a store not created yet: store.py puts the template first
    found = client.indices.get_index_template(name=template_name)["index_templates"][0]
    spec = found["index_template"]
    settings = spec.get("template", {}).get("settings", {})
    if settings.get("index", {}).get("lifecycle", {}).get("name") == name:
        return
    template = dict(spec.get("template", {}))
    index_settings = dict(settings.get("index", {}))
    index_settings["lifecycle"] = {**index_settings.get("lifecycle", {}), "name": name}
    template["settings"] = {**settings, "index": index_settings}
    client.indices.put_index_template(
        name=template_name,
        index_patterns=spec["index_patterns"],
        priority=spec.get("priority"),
        template=template,
        meta=spec.get("_meta"),
    )


def _indices_name(cluster: Cluster, name: str) -> None:
    """Give each month index without a policy this one and its origination date."""
    found = cluster.client.indices.get_settings(
        index=cluster.index("events"),
        name="index.lifecycle.name",
        allow_no_indices=True,
        ignore_unavailable=True,
    )
    for index, body in found.body.items():
        if body.get("settings", {}).get("index", {}).get("lifecycle", {}).get("name"):
            continue
        cluster.client.indices.put_settings(
            index=index, settings={"index.lifecycle.name": name, **month_settings(index)}
        )


def expire(cluster: Cluster, lifecycle: Lifecycle, now: datetime) -> list[str]:
    """What ILM would delete, for clusters without it (a no-op where ILM runs): month
    indices whose month ended `delete_after_days` before `now`. With an archive configured
    an index is deleted only once it is empty (the archiver dropped every day of it); one
    still holding events is left and logged, since those events are not archived yet.
    Returns the indices deleted."""
    if cluster.ilm:
        return []
    found = cluster.client.indices.get(
        index=cluster.index("events"), allow_no_indices=True, ignore_unavailable=True
    )
    deleted = []
    for index in sorted(found.body):
        age = now - month_end(index)
        if age.days < lifecycle.delete_after_days:
            continue
        if lifecycle.archived:
            left = int(cluster.client.count(index=index)["count"])
            if left:
                log.warning(
                    "%s is past the hot retention (%d days) but still holds %d events not "
                    "archived yet; run `secretwatch archive`",
                    index,
                    lifecycle.hot_days,
                    left,
                )
                continue
        cluster.client.indices.delete(index=index)
        cluster.forget(index)
        deleted.append(index)
    return deleted
