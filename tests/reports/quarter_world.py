"""A small generated quarter (2026Q3) with known findings, built as EventRows.

History starts 2026-04-01, so the 90-day windows before the quarter's end (from
2026-07-03) have evidence before them. What the report must find, exactly:

- unused: vault secret/team-c/old-token (last read 2026-04-05), aws prod/app/legacy
  (last read 2026-06-01), vault secret/team-a/never-used (inventory only, never seen);
- rotation overdue: vault secret/team-b/db (written 2026-04-10), aws prod/app/legacy
  (PutSecretValue 2026-04-20; its TagResource on 2026-09-10 is no new value);
- no rotation evidence: vault secret/team-a/api-key, secret/team-c/old-token,
  secret/team-a/never-used; rotated in time: everything else, each by its own source's
  evidence (Vault KV write, Vault rotate-role, RotateSecret, AddSecretVersion, SecretSet,
  Kubernetes update); database/creds/app is dynamic, so exempt;
- over-broad: svc-b (policy secret/data/* less a denied team-c: 4 granted, 1 used);
- grants never used: svc-a secret/team-a/never-used; svc-b team-a/db, team-a/api-key,
  team-a/never-used; aws role app prod/app/legacy;
- ownership gaps: vault secret/team-c/old-token, azure kv1/secrets/az-secret;
- alerts: svc-b true positive, svc-b false positive, svc-c open (one more before the
  quarter is left out);
- coverage gaps: vault 2026-08-09 09:00 to 2026-08-13 09:00 (no events), gcp from
  2026-09-20 09:00 to the quarter's end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from detectors.alert import Finding, Incident
from pipeline.record import EventRow

START = datetime(2026, 4, 1, tzinfo=UTC)
QUARTER_START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:"
ROLE = "arn:aws:iam::111122223333:role/app"
AWS_BACKEND = "111122223333/eu-west-1"

VAULT_VAULT_GAP = (datetime(2026, 8, 10, tzinfo=UTC), datetime(2026, 8, 13, tzinfo=UTC))
GCP_STOP = datetime(2026, 9, 21, tzinfo=UTC)

POLICIES = {
    "svc-a.hcl": 'path "secret/data/team-a/*" {\n  capabilities = ["read"]\n}\n'
    'path "database/creds/app" {\n  capabilities = ["read"]\n}\n',
    "svc-b.hcl": 'path "secret/data/*" {\n  capabilities = ["read", "list"]\n}\n'
    'path "secret/data/team-c/*" {\n  capabilities = ["deny"]\n}\n',
    "rotator.json": '{"path": {"secret/data/+/*": {"capabilities": ["create", "update"]}}}',
}
OWNERS = """owners:
  - {match: "secret/team-a/*", owner: team-a}
  - {match: "secret/team-b/*", owner: team-b}
  - {match: "database/*", owner: dba}
  - {match: "*:secret:prod/app/*", owner: app-team, source: aws}
  - {match: "projects/p/*", owner: gcp-team}
  - {match: "shop/*", owner: shop}
"""
INVENTORY = f"""secrets:
  - {{secret: secret/team-a/never-used, source: vault, owner: team-a}}
identities:
  - {{identity: svc-a, policies: [default, svc-a]}}
  - {{identity: svc-b, policies: [svc-b]}}
  - {{identity: rotator, policies: [rotator, missing-policy]}}
grants:
  - {{identity: "{ROLE}", source: aws, secrets: ["*:secret:prod/app/*"]}}
"""


def _row(n: int, when: datetime, source: str, identity: str, secret: str | None, action: str,
         operation: str, outcome: str = "success", backend: str | None = None,
         kind: str = "service") -> EventRow:  # fmt: skip
    ts = int(when.timestamp()) * 1_000_000
    backends = {"vault": "vault", "aws": AWS_BACKEND, "gcp": "p", "azure": "kv1", "k8s": "prod"}
    return EventRow(f"ev-{n:06d}", ts, source, backend or backends[source], identity, kind,
                    secret, action, operation, outcome, "10.0.0.1", None, None, None,
                    None)  # fmt: skip


def rows() -> list[EventRow]:
    out: list[EventRow] = []

    def add(*args: object, **kw: object) -> None:
        out.append(_row(len(out), *args, **kw))  # type: ignore[arg-type]

    day = START
    while day < END:
        t = day + timedelta(hours=9)
        vault_up = not (VAULT_VAULT_GAP[0] <= day < VAULT_VAULT_GAP[1])
        if vault_up:
            add(t, "vault", "svc-a", "secret/team-a/db", "read", "read")
            add(t, "vault", "svc-a", "secret/team-a/api-key", "read", "read")
            add(t, "vault", "svc-a", "database/creds/app", "read", "update")
            add(t, "vault", "svc-a", None, "auth", "update")
            add(t, "vault", "svc-b", "secret/team-b/db", "read", "read")
            add(t, "vault", "svc-d", "database/static-creds/reporting", "read", "read")
        add(t, "aws", ROLE, ARN + "prod/app/db", "read", "GetSecretValue")
        if day < GCP_STOP:
            add(
                t,
                "gcp",
                "sa@p.iam.gserviceaccount.com",
                "projects/p/secrets/gcp-key",
                "read",
                "AccessSecretVersion",
            )
        add(t, "azure", "app-id-1", "kv1/secrets/az-secret", "read", "SecretGet")
        add(t, "k8s", "shop/web", "shop/db-secret", "read", "get")
        day += timedelta(days=1)
    d = lambda m, dd: datetime(2026, m, dd, 12, tzinfo=UTC)  # noqa: E731
    add(d(4, 5), "vault", "svc-c", "secret/team-c/old-token", "read", "read")
    add(d(8, 15), "vault", "rotator", "secret/team-a/db", "write", "update")
    add(d(4, 10), "vault", "rotator", "secret/team-b/db", "write", "update")
    add(d(9, 14), "vault", "rotator", "database/rotate-role/reporting", "rotate", "update")
    add(d(6, 1), "aws", ROLE, ARN + "prod/app/legacy", "read", "GetSecretValue")
    add(d(9, 1), "aws", ROLE, ARN + "prod/app/db", "rotate", "RotateSecret")
    add(d(4, 20), "aws", ROLE, ARN + "prod/app/legacy", "write", "PutSecretValue")
    add(d(9, 10), "aws", ROLE, ARN + "prod/app/legacy", "write", "TagResource")
    add(
        d(8, 1),
        "gcp",
        "sa@p.iam.gserviceaccount.com",
        "projects/p/secrets/gcp-key",
        "write",
        "AddSecretVersion",
    )
    add(d(7, 20), "azure", "app-id-1", "kv1/secrets/az-secret", "write", "SecretSet")
    add(d(9, 5), "k8s", "ci/deployer", "shop/db-secret", "write", "update")
    for i in range(5):
        add(
            d(8, 20) + timedelta(minutes=i),
            "vault",
            "svc-b",
            "secret/team-a/db",
            "read",
            "read",
            outcome="denied",
        )
    return out


def alerts() -> list[dict]:
    """Three alerts in the quarter (svc-b twice, svc-c once) and one before it."""
    out = []
    for identity, when in (("svc-b", datetime(2026, 8, 20, 12, tzinfo=UTC)),
                           ("svc-b", datetime(2026, 9, 25, 3, tzinfo=UTC)),
                           ("svc-c", datetime(2026, 7, 2, 3, tzinfo=UTC)),
                           ("svc-a", datetime(2026, 6, 1, 3, tzinfo=UTC))):  # fmt: skip
        start = int(when.timestamp()) * 1_000_000
        incident = Incident(identity, baseline_version=1)
        incident.add(
            Finding(
                "denied_burst",
                identity,
                start,
                start + 3_600_000_000,
                start,
                3.0,
                2.0,
                "medium",
                f"{identity} was denied 5 times.",
                ("ev-1",),
            )
        )
        out.append(incident.alert().model_dump(mode="json"))
    return out


# Verdicts an analyst recorded: alert index -> resolution (the third stays open).
RESOLUTIONS = {0: "true_positive", 1: "false_positive"}


def write_evidence(folder: Path) -> dict[str, Path]:
    """Owners, inventory and a policies folder for the world, under `folder`."""
    policies = folder / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    for name, text in POLICIES.items():
        (policies / name).write_text(text)
    (folder / "owners.yaml").write_text(OWNERS)
    (folder / "inventory.yaml").write_text(INVENTORY)
    return {"owners": folder / "owners.yaml", "inventory": folder / "inventory.yaml",
            "policies_dir": policies}  # fmt: skip
