"""Granted against used: what each identity may read (Vault ACL policies, inventory grants
for other backends) next to what it did read in the period.

Grants are resolved against the inventory of known secrets: a glob grants every known
secret it matches, which is what a reviewer can act on (a path nobody has ever written
is not a secret yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from pipeline.reports.inventory import Evidence
from pipeline.reports.policies import ACL, Rule, acl_for, request_path

GRANT_COLUMNS = [
    "identity", "source", "backend", "secret", "granted_by", "rule", "reads", "last_read", "used",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "identity", "granted", "used", "unused", "used_share", "secrets_read_without_grant",
    "overbroad",
]  # fmt: skip


def resolve(
    known: pd.DataFrame,
    evidence: Evidence,
    policies: Mapping[str, list[Rule]],
    kv2_mounts: Sequence[str],
) -> pd.DataFrame:
    """Every (identity, secret) some grant allows reading, with the granting policies (or
    `inventory`) and the rule that decides it. `known` has source, backend, secret."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    vault = known[known["source"] == "vault"]
    by_request: dict[str, list[tuple[str, str]]] = {}
    for backend, secret in zip(vault["backend"], vault["secret"], strict=True):
        by_request.setdefault(request_path(secret, kv2_mounts), []).append((backend, secret))
    acls: dict[tuple[str, ...], ACL] = {}
    for identity, names in sorted(evidence.vault_policies().items()):
        key = tuple(sorted(set(names)))
        acl = acls.get(key) or acls.setdefault(key, acl_for(key, policies))
        for path, decision in acl.readable(list(by_request)).items():
            for backend, secret in by_request[path]:
                granted_by = ", ".join(decision.granted_by)
                rows.append((identity, "vault", backend, secret, granted_by, decision.pattern))
    for source in sorted(set(known["source"]) - {"vault"}):
        mine = known[known["source"] == source]
        for identity, glob, regex in evidence.grants(source):
            for backend, secret in zip(mine["backend"], mine["secret"], strict=True):
                if regex.fullmatch(secret):
                    rows.append((identity, source, backend, secret, "inventory", glob))
    frame = pd.DataFrame(rows, columns=GRANT_COLUMNS[:6])
    # One row per grant: several inventory globs may match one secret.
    frame = frame.sort_values(GRANT_COLUMNS[:6]).drop_duplicates(GRANT_COLUMNS[:4])
    return frame.reset_index(drop=True)


def with_use(grants: pd.DataFrame, reads: pd.DataFrame) -> pd.DataFrame:
    """Grants joined with the period's successful reads (identity, source, backend,
    secret, reads, last_read): `used` is whether the grant was exercised."""
    keys = ["identity", "source", "backend", "secret"]
    joined = grants.merge(reads[[*keys, "reads", "last_read"]], on=keys, how="left")
    joined["reads"] = joined["reads"].fillna(0).astype("int64")
    joined["used"] = joined["reads"] > 0
    return joined[GRANT_COLUMNS].sort_values(keys, ignore_index=True)


def summarize(
    grants: pd.DataFrame, reads: pd.DataFrame, factor: float, min_unused: int
) -> pd.DataFrame:
    """Per identity with grants: granted, used, unused, the used share, reads of secrets
    no known grant covers (the grant evidence is incomplete there), and whether grants far
    exceed use: granted >= factor x max(used, 1) with at least `min_unused` unused."""
    if grants.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    per = grants.groupby("identity").agg(granted=("secret", "size"), used=("used", "sum"))
    per["used"] = per["used"].astype("int64")
    per["unused"] = per["granted"] - per["used"]
    per["used_share"] = (per["used"] / per["granted"]).round(3)
    keys = ["identity", "source", "backend", "secret"]
    covered = reads.merge(grants[keys], on=keys, how="left", indicator=True)
    outside = covered[(covered["_merge"] == "left_only") & covered["identity"].isin(per.index)]
    outside_count = outside.groupby("identity").size().reindex(per.index).fillna(0)
    per["secrets_read_without_grant"] = outside_count.astype("int64")
    per["overbroad"] = (per["granted"] >= factor * per["used"].clip(lower=1)) & (
        per["unused"] >= min_unused
    )
    return per.reset_index()[SUMMARY_COLUMNS].sort_values("identity", ignore_index=True)
