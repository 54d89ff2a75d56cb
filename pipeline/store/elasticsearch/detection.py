"""Detection state on Elasticsearch (contracts: `DetectionState` in
pipeline/store/base.py): alerts, baselines and detection state, as functions of a
`Cluster`. No transactions here, so a save is ordered to make a crash part-way harmless."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.errors import StoreError
from pipeline.store import outbox_rules as rules
from pipeline.store.elasticsearch.schema import action, blob, iso, now_iso, unblob

if TYPE_CHECKING:
    from pipeline.store.elasticsearch.cluster import Cluster


def save(
    cluster: Cluster,
    baselines: Sequence[tuple[str, bytes]],
    state: Mapping[str, bytes],
    alerts: Sequence[Mapping[str, Any]],
    version: int,
    replace: bool,
) -> None:
    """Store alerts, baselines and detection state, in that order, each step only once
    the one before it is complete, since Elasticsearch has no transactions:
    1. every document is built first, so a malformed alert stores nothing at all;
    2. alerts, upserted by id: raised again after a crash, they change nothing;
    3. baselines, then (`replace`) the deletion of all older ones;
    4. detection state, the `meta` key (the watermark) last.
    A crash before step 4 leaves the old watermark: the restarted detector judges that
    stretch again (same alert ids, so no duplicates) and may learn it a second time."""
    now, generation = now_iso(), uuid.uuid4().hex
    docs = {doc["id"]: doc for doc in (_alert_doc(a, now) for a in alerts)}
    baseline_actions = [
        action(
            "index",
            cluster.index("baselines"),
            identity,
            {
                "identity": identity,
                "version": version,
                "generation": generation,
                "body": blob(body),
                "updated_at": now,
            },
        )
        for identity, body in baselines
    ]
    state_actions = {
        key: action(
            "index",
            cluster.index("detection-state"),
            key,
            {"key": key, "value": blob(value), "updated_at": now},
        )
        for key, value in state.items()
    }
    if docs:
        cluster.rewrite("alerts", list(docs), lambda i, old: _upsert_alert(docs[i], old, now))
    if baseline_actions or replace:
        cluster.ensure(cluster.index("baselines"))
        cluster.bulk_checked(baseline_actions)
        if replace:
            _drop_baselines_but(cluster, generation)
        cluster.refresh({cluster.index("baselines")})
    if state_actions:
        cluster.ensure(cluster.index("detection-state"))
        rest = [a for key, a in state_actions.items() if key != "meta"]
        cluster.bulk_checked(rest)
        if "meta" in state_actions:
            cluster.bulk_checked([state_actions["meta"]])


def _drop_baselines_but(cluster: Cluster, generation: str) -> None:
    """Delete the baselines other calls wrote (search + bulk delete, not
    delete_by_query, which lives in a module minimal distributions lack)."""
    index = cluster.index("baselines")
    cluster.refresh({index})
    where = {"bool": {"must_not": {"term": {"generation": generation}}}}
    for hits in cluster.pages(index, where, [{"identity": "asc"}], source=False):
        deletes = [action("delete", index, h["_id"]) for h in hits]
        cluster.bulk_checked(deletes, accept=(404,))


def baselines(cluster: Cluster, identities: Sequence[str] | None) -> list[tuple[str, bytes]]:
    if identities is not None:
        docs = cluster.mget(cluster.index("baselines"), list(dict.fromkeys(identities)))
        return sorted((d["_id"], unblob(d["_source"]["body"]) or b"") for d in docs if d)
    return [
        (h["_source"]["identity"], unblob(h["_source"]["body"]) or b"")
        for hits in cluster.pages(
            cluster.index("baselines"),
            {"match_all": {}},
            [{"identity": "asc"}],
            source=["identity", "body"],
        )
        for h in hits
    ]


def detection_state(cluster: Cluster, key: str) -> bytes | None:
    doc = cluster.get("detection-state", key)
    return unblob(doc["value"]) if doc else None


def _alert_doc(alert: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The detection fields of an alert document; malformed alerts raise StoreError."""
    try:
        return {
            "id": str(alert["id"]),
            "@timestamp": iso(alert["timestamp"]),
            "user.name": str(alert["identity"]),
            "severity": str(alert["severity"]),
            "detectors": ",".join(alert["detectors"]),
            "score": float(alert["score"]),
            "window_start": iso(alert["window_start"]),
            "window_end": iso(alert["window_end"]),
            "explanation": str(alert["explanation"]),
            "evidence_count": int(alert["evidence_count"]),
            "baseline_version": int(alert["baseline_version"]),
            "body": orjson.dumps(alert, default=str).decode(),
            "updated_at": now,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(
            f"alert {alert.get('id')!r} cannot be stored: {exc!r}; nothing was saved"
        ) from exc


def _upsert_alert(doc: dict[str, Any], stored: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """A new alert whole; a known one keeps its creation time and analyst verdict, and
    its revision grows only if its body changed."""
    if stored is None:
        return {**doc, "created_at": now, "revision": rules.FIRST_REVISION}
    revision = rules.upserted_revision(stored["revision"], stored["body"], doc["body"])
    return {**stored, **doc, "revision": revision}
