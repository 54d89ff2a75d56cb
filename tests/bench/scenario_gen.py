"""Seeded scenario for judging detectors: months of Vault audit and CloudTrail (Secrets
Manager) logs for ~38 identities, with labelled attacks and labelled legitimate changes.

    python tests/bench/scenario_gen.py OUT [--seed 1] [--days 120] [--scale 1.0]

writes `OUT/vault/audit.log` (request + response entry per call, in time order),
`OUT/aws/YYYY-MM-DD.json` (CloudTrail `{"Records": [...]}`, one file per day) and
`OUT/labels.json` (the ground truth, see `generate`).

Detectors can only be tuned against ground truth, and ground truth only means something if
normal traffic has the texture of real traffic: daily and weekly rhythms, Poisson noise,
pod addresses that change on every redeploy, batch jobs at fixed hours, people who take
holidays and get paged at night, a misconfigured service that keeps being denied. Attacks
are interleaved with their identity's own normal traffic, so nothing but behaviour tells
them apart. One module because every behaviour below shares the same calendar, secret
inventory and call records; split, each piece would import all the others.

All randomness comes from `random.Random` / `numpy.random.Generator` streams derived from
(seed, stream name), so a seed always writes the same bytes, and changing one behaviour
leaves the traffic of every other identity unchanged. Times are UTC; the company's working
day is 08:30-18:30 UTC.

`scale` multiplies machine traffic (services, CI pipelines, AWS tasks); people, schedules
and attacks keep their size (a rate spike stays 12x its identity's own rate).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

START = datetime(2026, 2, 1, tzinfo=UTC)
DETECT_DAYS = 30
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
ACCOUNT = "111122223333"
REGION = "eu-west-1"
DENIED = "permission denied"
DENIED_RESPONSE = "1 error occurred:\n\t* permission denied\n\n"

# Relative request rate by hour of day (UTC): user-facing services follow the working day.
_WEB = np.array(
    [0.30, 0.25, 0.22, 0.20, 0.22, 0.30, 0.45, 0.65, 0.85, 0.97, 1.0, 1.0]
    + [0.95, 0.97, 1.0, 0.98, 0.92, 0.85, 0.75, 0.65, 0.55, 0.48, 0.40, 0.34]
)
CURVES = {"web": _WEB, "flat": 0.8 + 0.2 * _WEB}
WEEKEND = {"web": 0.55, "flat": 0.9}
HOLIDAY = {"web": 0.45, "flat": 0.8}

# (call time us, actor, operation, path, address, token key, error, attack id, user agent)
VaultCall = tuple[int, str, str, str, str, str, "str | None", "str | None", "str | None"]
# (call time us, actor, eventName, secret name, address, session, errorCode, attack id, agent)
AwsCall = tuple[int, str, str, "str | None", str, str, "str | None", "str | None", "str | None"]


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Service:
    """A Kubernetes workload authenticating with its service account."""

    ns: str
    name: str
    secrets: tuple[str, ...]  # KV v2 names it owns (`team/app/x`)
    shared: tuple[str, ...]
    db: bool  # reads dynamic database credentials
    peak: float  # calls per hour at the busiest hour, scale 1
    curve: str
    redeploy_days: float
    pods: int
    agent: str
    denied: str | None = None  # a path its policy lacks: it keeps being denied
    denied_rate: float = 0.0  # denied calls per hour
    deployed_at: float | None = None  # fraction of the detection period; None: from the start

    @property
    def identity(self) -> str:
        return f"{self.ns}/{self.name}"


@dataclass(frozen=True)
class Batch:
    """A scheduled AppRole job: a burst of reads at a fixed hour."""

    role: str
    team: str
    secrets: tuple[str, ...]
    hour: float
    weekdays: tuple[int, ...]
    creds: tuple[str, ...] = ()
    moved_to: float | None = None  # new hour from the `batch_rescheduled` change on
    active_days: int | None = None  # runs only in the first days (the dormant identity)


@dataclass(frozen=True)
class Human:
    identity: str
    method: str  # oidc | userpass
    team: str
    oncall: bool
    agent: str


@dataclass(frozen=True)
class Role:
    """An AWS IAM role whose sessions read Secrets Manager."""

    name: str
    kind: str  # ecs | lambda | ec2 | sso | sagemaker
    team: str
    secrets: tuple[str, ...]
    peak: float = 0.0
    curve: str = "web"
    path: str = ""
    by_arn: bool = False  # SDK configured with the secret's full ARN rather than its name
    agent: str = "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 api/secretsmanager#1.32.4"

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{self.path}{self.name}"


SHARED = (
    "shared/datadog/api-key",
    "shared/kafka/ca",
    "shared/sentry/dsn",
    "shared/tls/wildcard",
    "shared/tls/internal-ca",
    "shared/smtp/relay",
)
AGENT, HVAC, GOCLIENT = "vault-agent/1.15.2", "hvac/2.1.0", "vault-client-go/0.4.3"
SERVICES = (
    Service(
        "payments",
        "payments-api",
        (
            "payments/payments-api/db",
            "payments/payments-api/stripe-api-key",
            "payments/payments-api/webhook-signing",
        ),
        ("shared/datadog/api-key", "shared/kafka/ca"),
        True,
        20,
        "web",
        4,
        3,
        AGENT,
    ),
    Service(
        "payments",
        "ledger-worker",
        ("payments/ledger-worker/db", "payments/ledger-worker/kafka-creds"),
        ("shared/kafka/ca",),
        True,
        8,
        "flat",
        6,
        2,
        HVAC,
    ),
    Service(
        "orders",
        "orders-api",
        ("orders/orders-api/db", "orders/orders-api/redis", "orders/orders-api/config"),
        ("shared/datadog/api-key", "shared/kafka/ca", "shared/sentry/dsn"),
        True,
        25,
        "web",
        3,
        4,
        AGENT,
    ),
    Service(
        "orders",
        "cart-svc",
        ("orders/cart-svc/redis", "orders/cart-svc/config"),
        ("shared/datadog/api-key",),
        False,
        18,
        "web",
        4,
        3,
        GOCLIENT,
    ),
    Service(
        "orders",
        "notification-svc",
        ("orders/notification-svc/twilio", "orders/notification-svc/config"),
        ("shared/sentry/dsn",),
        False,
        6,
        "web",
        7,
        2,
        HVAC,
        denied="secret/data/shared/smtp/relay",
        denied_rate=0.5,
    ),
    Service(
        "search",
        "search-indexer",
        ("search/search-indexer/opensearch", "search/search-indexer/kafka-creds"),
        ("shared/kafka/ca",),
        False,
        10,
        "flat",
        5,
        2,
        GOCLIENT,
    ),
    Service(
        "search",
        "query-api",
        ("search/query-api/opensearch-ro", "search/query-api/config"),
        ("shared/datadog/api-key", "shared/sentry/dsn"),
        False,
        15,
        "web",
        3,
        3,
        AGENT,
    ),
    Service(
        "identity",
        "auth-gateway",
        (
            "identity/auth-gateway/jwt-signing-key",
            "identity/auth-gateway/oidc-client",
            "identity/auth-gateway/db",
        ),
        ("shared/tls/wildcard", "shared/datadog/api-key"),
        True,
        20,
        "web",
        5,
        3,
        AGENT,
    ),
    Service(
        "identity",
        "session-svc",
        ("identity/session-svc/redis", "identity/session-svc/cookie-key"),
        ("shared/datadog/api-key",),
        False,
        12,
        "web",
        6,
        2,
        GOCLIENT,
    ),
    Service(
        "analytics",
        "feature-store",
        ("analytics/feature-store/postgres", "analytics/feature-store/s3-creds"),
        ("shared/kafka/ca",),
        True,
        8,
        "flat",
        6,
        2,
        HVAC,
    ),
    Service(
        "platform",
        "ingress-controller",
        ("platform/ingress-controller/dhparam",),
        ("shared/tls/wildcard", "shared/tls/internal-ca"),
        False,
        4,
        "flat",
        10,
        2,
        AGENT,
    ),
    Service(
        "platform",
        "metrics-exporter",
        ("platform/metrics-exporter/datadog",),
        ("shared/datadog/api-key",),
        False,
        3,
        "flat",
        4,
        2,
        GOCLIENT,
        denied="secret/data/platform/grafana/admin",
        denied_rate=1.5,
    ),
)
NEW_SERVICE = Service(
    "orders",
    "returns-api",
    ("orders/returns-api/db", "orders/returns-api/config"),
    ("shared/datadog/api-key", "shared/kafka/ca", "shared/sentry/dsn"),
    True,
    10,
    "web",
    4,
    2,
    AGENT,
    deployed_at=0.1,
)
EVERYDAY = (0, 1, 2, 3, 4, 5, 6)
BATCHES = (
    Batch(
        "nightly-billing",
        "payments",
        ("payments/billing/stripe-export", "payments/billing/sftp"),
        2.0,
        EVERYDAY,
        ("database/creds/billing",),
    ),
    Batch(
        "reports-export",
        "analytics",
        ("analytics/reports/sftp", "analytics/reports/warehouse-ro", "shared/smtp/relay"),
        6.0,
        (0, 1, 2, 3, 4),
    ),
    Batch(
        "db-backup",
        "platform",
        ("platform/db-backup/s3-creds", "platform/db-backup/gpg-key"),
        3.5,
        EVERYDAY,
        (
            "database/creds/backup-payments",
            "database/creds/backup-orders",
            "database/creds/backup-identity",
        ),
    ),
    Batch(
        "weekly-reconcile",
        "payments",
        ("payments/ledger-worker/db", "payments/billing/stripe-export"),
        4.0,
        (6,),
    ),
    Batch(
        "data-warehouse-sync",
        "analytics",
        ("analytics/warehouse/snowflake", "analytics/warehouse/s3-staging"),
        5.0,
        EVERYDAY,
        moved_to=14.0,
    ),
    Batch(
        "legacy-cron",
        "platform",
        ("platform/legacy/ftp", "platform/legacy/db"),
        4.25,
        EVERYDAY,
        active_days=21,
    ),
)
HUMANS = (
    Human(
        "alice@example.com",
        "oidc",
        "payments",
        False,
        "Mozilla/5.0 (Macintosh; Intel Mac OS "
        "X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    ),
    Human(
        "bob", "userpass", "orders", False, "Vault/1.15.2 (+https://www.vaultproject.io/; go1.21.3)"
    ),
    Human(
        "carol@example.com",
        "oidc",
        "platform",
        True,
        "Vault/1.15.2 (+https://www.vaultproject.io/; go1.21.3)",
    ),
    Human(
        "dave@example.com",
        "oidc",
        "search",
        True,
        "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    ),
    Human(
        "erin",
        "userpass",
        "identity",
        False,
        "Vault/1.15.2 (+https://www.vaultproject.io/; go1.21.3)",
    ),
    Human(
        "frank@example.com",
        "oidc",
        "analytics",
        True,
        "Mozilla/5.0 (Windows NT 10.0; Win64; "
        "x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0 Safari/537.36",
    ),
)
ONCALL = tuple(h.identity for h in HUMANS if h.oncall)
CI_SECRETS = ("ci/registry/push-token", "ci/sonarqube/token")
CI_RUNNERS = tuple(f"10.30.0.{n}" for n in range(11, 17))
TFC_ADDRESSES = ("75.2.98.97", "99.83.150.238")
BATCH_NODES = tuple(f"10.0.12.{n}" for n in range(21, 27))
OUTSIDE_VAULT, OUTSIDE_AWS = "198.51.100.23", "203.0.113.77"
ROOT_ADDRESS = "10.8.1.57"

CLI_AGENT = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1017-aws exe/x86_64.ubuntu.22 prompt/off"
BOTO_LAMBDA = (
    "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.214 md/arch#x86_64 "
    "lang/python#3.12.2 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12"
)
BOTO_EC2 = "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#6.1.84 lang/python#3.11.8"
AWS_SECRETS = (
    "prod/orders/db",
    "prod/orders/stripe-webhook",
    "prod/payments/api-key",
    "prod/payments/db",
    "prod/payments/card-vault-token",
    "prod/search/opensearch",
    "prod/billing/sftp",
    "prod/billing/db",
    "prod/analytics/redshift",
    "prod/reporting/db",
    "prod/reporting/looker-api",
    "prod/ml/feature-store",
    "prod/shared/datadog-api-key",
    "prod/shared/pagerduty-key",
    "prod/identity/okta-api-token",
    "prod/identity/saml-cert",
    "staging/orders/db",
    "staging/payments/api-key",
    "staging/search/opensearch",
    "prod/platform/github-app-key",
    "prod/platform/terraform-cloud-token",
    "prod/data/snowflake",
    "prod/data/fivetran",
    "prod/marketing/hubspot-key",
    "prod/marketing/sendgrid-key",
    "prod/support/zendesk-token",
)
SSO_DEV = "AWSReservedSSO_DeveloperAccess_3f2a1b0c9d8e7f60"
SSO_ADMIN = "AWSReservedSSO_AdministratorAccess_8c7d6e5f4a3b2c1d"
SSO_PATH = f"aws-reserved/sso.amazonaws.com/{REGION}/"
ROLES = (
    Role(
        "orders-api-task",
        "ecs",
        "orders",
        ("prod/orders/db", "prod/orders/stripe-webhook", "prod/shared/datadog-api-key"),
        peak=12,
    ),
    Role(
        "payments-lambda",
        "lambda",
        "payments",
        ("prod/payments/api-key", "prod/payments/db"),
        peak=15,
        by_arn=True,
        agent=BOTO_LAMBDA,
    ),
    Role("search-ingest-task", "ecs", "search", ("prod/search/opensearch",), peak=6, curve="flat"),
    Role(
        "reporting-api-task",
        "ecs",
        "reporting",
        ("prod/reporting/db", "prod/reporting/looker-api"),
        peak=8,
    ),
    Role(
        "analytics-etl",
        "ec2",
        "analytics",
        ("prod/analytics/redshift", "prod/shared/datadog-api-key", "prod/data/snowflake"),
        agent=BOTO_EC2,
    ),
    Role(
        "billing-export-lambda",
        "lambda",
        "payments",
        ("prod/billing/sftp", "prod/billing/db"),
        by_arn=True,
        agent=BOTO_LAMBDA,
    ),
    Role(
        "ml-training",
        "sagemaker",
        "analytics",
        ("prod/ml/feature-store", "prod/analytics/redshift"),
        path="service-role/",
        agent=BOTO_EC2,
    ),
    Role(
        "secrets-rotation-lambda",
        "lambda",
        "platform",
        ("prod/orders/db", "prod/payments/db", "prod/billing/db", "prod/reporting/db"),
        path="service-role/",
        by_arn=True,
        agent=BOTO_LAMBDA,
    ),
    Role(SSO_DEV, "sso", "engineering", (), path=SSO_PATH, agent=CLI_AGENT),
    Role(SSO_ADMIN, "sso", "platform", (), path=SSO_PATH, agent=CLI_AGENT),
)
SSO_TEAMS = {  # AWS secrets each developer works with through the SSO role
    "alice@example.com": (
        "prod/payments/api-key",
        "prod/payments/db",
        "prod/billing/sftp",
        "staging/payments/api-key",
    ),
    "dave@example.com": ("prod/search/opensearch", "staging/search/opensearch"),
    "frank@example.com": (
        "prod/analytics/redshift",
        "prod/data/snowflake",
        "prod/ml/feature-store",
        "prod/data/fivetran",
    ),
    "bob@example.com": ("prod/orders/db", "staging/orders/db", "prod/orders/stripe-webhook"),
}
ROLE_BY_NAME = {r.name: r for r in ROLES}


def _kv_owned() -> dict[str, str]:
    """Every KV secret name -> owning team."""
    owned = {s: svc.ns for svc in (*SERVICES, NEW_SERVICE) for s in svc.secrets}
    owned.update({s: b.team for b in BATCHES for s in b.secrets if not s.startswith("shared/")})
    owned.update({s: "shared" for s in SHARED})
    owned.update({"platform/grafana/admin": "platform", "platform/terraform/state-key": "platform"})
    owned.update({s: "ci" for s in CI_SECRETS})
    owned.update({f"ci/deploy/{s.ns}/{s.name}/kubeconfig": "ci" for s in SERVICES})
    return owned


KV_OWNER = _kv_owned()


def team_secrets(team: str) -> tuple[str, ...]:
    """KV names a team owns, for its people (sorted: deterministic)."""
    return tuple(sorted(s for s, t in KV_OWNER.items() if t == team))


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def _rngs(seed: int, *names: object) -> tuple[random.Random, np.random.Generator]:
    """Independent streams per behaviour, derived from the seed and a name."""
    key = "/".join(str(n) for n in (seed, *names)).encode()
    digest = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return random.Random(digest), np.random.default_rng(digest)


# --------------------------------------------------------------------------- calendar


@dataclass(frozen=True)
class Calendar:
    """Days of the scenario: training first, detection (with a holiday lull) last."""

    days: int
    scale: float
    start_us: int = int(START.timestamp()) * SECOND

    @property
    def detect_days(self) -> int:
        return DETECT_DAYS if self.days >= 2 * DETECT_DAYS else max(3, self.days // 3)

    @property
    def train_days(self) -> int:
        return self.days - self.detect_days

    @property
    def holiday(self) -> range:
        first = self.detect_day(0.63)
        return range(first, min(self.days, first + max(2, round(0.23 * self.detect_days))))

    def t(self, day: int, hour: float = 0.0) -> int:
        return self.start_us + day * DAY + int(hour * HOUR)

    def weekday(self, day: int) -> int:
        return (START.weekday() + day) % 7

    def workday(self, day: int) -> bool:
        return self.weekday(day) < 5 and day not in self.holiday

    def detect_day(self, frac: float) -> int:
        return self.train_days + min(self.detect_days - 1, int(frac * self.detect_days))

    def weekday_near(self, day: int) -> int:
        """The first Monday-Friday on or after `day`, else before it, in the detection period."""
        for d in [*range(day, self.days), *range(day - 1, self.train_days - 1, -1)]:
            if self.weekday(d) < 5:
                return d
        return day

    def rates(self, peak: float, curve: str, first_day: int = 0) -> np.ndarray:
        """Expected calls per hour over the whole scenario."""
        hours = np.arange(self.days * 24)
        day = hours // 24
        lam = peak * self.scale * CURVES[curve][hours % 24]
        weekend = np.array([self.weekday(d) >= 5 for d in range(self.days)])[day]
        lam[weekend] *= WEEKEND[curve]
        lam[np.isin(day, np.array(list(self.holiday)))] *= HOLIDAY[curve]
        lam[day < first_day] = 0.0
        return lam


def poisson_times(nrng: np.random.Generator, cal: Calendar, lam: np.ndarray) -> np.ndarray:
    """Call times (us) of an inhomogeneous Poisson process with hourly rates `lam`."""
    counts = nrng.poisson(lam)
    starts = cal.start_us + np.arange(lam.size, dtype=np.int64) * HOUR
    times = np.repeat(starts, counts) + nrng.integers(0, HOUR, int(counts.sum()))
    return np.sort(times)


# --------------------------------------------------------------------------- call sink


@dataclass
class World:
    """Everything generated so far: calls, and what attacks need to blend in."""

    cal: Calendar
    seed: int
    vault: list[VaultCall] = field(default_factory=list)
    aws: list[AwsCall] = field(default_factory=list)
    deploys: dict[str, tuple[list[int], list[list[str]]]] = field(default_factory=dict)
    homes: dict[str, list[str]] = field(default_factory=dict)
    changes: list[dict] = field(default_factory=list)

    def v(
        self,
        ts: int,
        actor: str,
        op: str,
        path: str,
        ip: str,
        token: str,
        error: str | None = None,
        tag: str | None = None,
        agent: str | None = None,
    ) -> None:
        self.vault.append((ts, actor, op, path, ip, token, error, tag, agent))

    def a(
        self,
        ts: int,
        actor: str,
        event: str,
        secret: str | None,
        ip: str,
        session: str,
        error: str | None = None,
        tag: str | None = None,
        agent: str | None = None,
    ) -> None:
        self.aws.append((ts, actor, event, secret, ip, session, error, tag, agent))

    def pod_at(self, identity: str, ts: int, rng: random.Random) -> tuple[str, str]:
        """(address, token key) of one of the identity's pods running at `ts`."""
        times, pods = self.deploys[identity]
        epoch = int(np.searchsorted(np.array(times), ts, side="right")) - 1
        pod = rng.randrange(len(pods[epoch]))
        return pods[epoch][pod], f"{epoch}.{pod}"


def _gaps(rng: random.Random, ts: int, n: int, low: float, high: float) -> list[int]:
    """`n` increasing times from `ts`, `low`-`high` seconds apart."""
    out = []
    for _ in range(n):
        ts += int(rng.uniform(low, high) * SECOND)
        out.append(ts)
    return out


# --------------------------------------------------------------------------- Vault behaviour


def _deploy_times(
    rng: random.Random, cal: Calendar, first_day: int, mean_days: float, new: bool
) -> list[int]:
    """Rollouts on working days in working hours; none during the holiday freeze."""
    out = [cal.t(first_day, 10 + rng.random() * 5) if new else cal.start_us]
    day = first_day
    while True:
        day += max(1, round(rng.expovariate(1 / mean_days)))
        while day < cal.days and not cal.workday(day):
            day += 1
        if day >= cal.days:
            return out
        out.append(cal.t(day, 9.5 + rng.random() * 8))


def _pod_ip(rng: random.Random) -> str:
    return f"10.244.{rng.randrange(0, 16)}.{rng.randrange(2, 255)}"


def k8s_service(w: World, svc: Service) -> None:
    """A service's steady traffic plus a startup burst per pod on every rollout."""
    cal, ident = w.cal, svc.identity
    rng, nrng = _rngs(w.seed, "k8s", ident)
    new = svc.deployed_at is not None
    first = cal.detect_day(svc.deployed_at) if svc.deployed_at is not None else 0
    deploys = _deploy_times(rng, cal, first, svc.redeploy_days, new)
    pods = [[_pod_ip(rng) for _ in range(svc.pods)] for _ in deploys]
    w.deploys[ident] = (deploys, pods)
    own = tuple(f"secret/data/{s}" for s in svc.secrets)
    menu: list[tuple[str, tuple[str, ...], float]] = [
        ("read", own, 50.0),
        ("read", tuple(f"secret/data/{s}" for s in svc.shared), 10.0),
        ("update", ("auth/token/renew-self",), 14.0),
        ("read", ("auth/token/lookup-self",), 6.0),
        ("read", tuple(f"secret/metadata/{s}" for s in svc.secrets), 3.0),
    ]
    if svc.db:
        menu += [
            ("read", (f"database/creds/{svc.name}",), 8.0),
            ("update", ("sys/leases/renew",), 6.0),
        ]
    weights = np.array([m[2] for m in menu])
    times = poisson_times(nrng, cal, cal.rates(svc.peak, svc.curve, first))
    times = times[times > deploys[0]]
    epochs = np.searchsorted(np.array(deploys), times, side="right") - 1
    pod = nrng.integers(0, svc.pods, times.size)
    kind = nrng.choice(len(menu), times.size, p=weights / weights.sum())
    pick = nrng.integers(0, 1 << 20, times.size)
    for ts, e, p, k, x in zip(
        times.tolist(), epochs.tolist(), pod.tolist(), kind.tolist(), pick.tolist(), strict=True
    ):
        op, paths, _ = menu[k]
        w.v(ts, ident, op, paths[x % len(paths)], pods[e][p], f"{e}.{p}")
    if svc.denied:
        denied = poisson_times(nrng, cal, cal.rates(svc.denied_rate, svc.curve, first))
        denied = denied[denied > deploys[0]]
        epochs = np.searchsorted(np.array(deploys), denied, side="right") - 1
        for ts, e in zip(denied.tolist(), epochs.tolist(), strict=True):
            p = rng.randrange(svc.pods)
            w.v(ts, ident, "read", svc.denied, pods[e][p], f"{e}.{p}", DENIED)
    for e, at in enumerate(deploys):
        if e == 0 and not new:
            continue  # pods already running when the logs begin
        for p, ip in enumerate(pods[e]):
            _pod_start(w, rng, svc, at + p * int(rng.uniform(20, 70) * SECOND), ip, f"{e}.{p}")


def _pod_start(w: World, rng: random.Random, svc: Service, ts: int, ip: str, token: str) -> None:
    """A new pod logs in and reads everything it needs (a misconfigured one is denied)."""
    ident = svc.identity
    w.v(ts, ident, "update", "auth/kubernetes/login", ip, token)
    paths = [f"secret/data/{s}" for s in (*svc.secrets, *svc.shared)]
    if svc.db:
        paths.append(f"database/creds/{svc.name}")
    for at, path in zip(_gaps(rng, ts, len(paths), 0.05, 1.5), paths, strict=True):
        w.v(at, ident, "read", path, ip, token)
    if svc.denied:
        for at in _gaps(rng, ts, rng.randint(2, 4), 2.0, 15.0):
            w.v(at, ident, "read", svc.denied, ip, token, DENIED)


def batch_job(w: World, job: Batch) -> None:
    cal = w.cal
    rng, _ = _rngs(w.seed, "batch", job.role)
    w.homes[job.role] = list(BATCH_NODES)
    moved = cal.detect_day(0.3)
    last = cal.days if job.active_days is None else min(job.active_days, cal.train_days // 4)
    for day in range(last):
        if cal.weekday(day) not in job.weekdays or rng.random() < 0.01:
            continue
        hour = job.moved_to if job.moved_to is not None and day >= moved else job.hour
        ts = cal.t(day, hour) + rng.randint(-60, 150) * SECOND
        batch_run(w, rng, job, ts, rng.choice(BATCH_NODES), f"run{day}")
    if job.moved_to is not None:
        w.changes.append(
            {
                "kind": "batch_rescheduled",
                "source": "vault",
                "identity": job.role,
                "start": iso(cal.t(moved, job.moved_to) - 5 * MINUTE),
                "end": iso(cal.t(cal.days)),
                "description": f"{job.role} moved from {job.hour:05.2f} h to "
                f"{job.moved_to:05.2f} h UTC (same secrets, same hosts)",
            }
        )


def batch_run(
    w: World,
    rng: random.Random,
    job: Batch,
    ts: int,
    ip: str,
    token: str,
    tag: str | None = None,
    extra: tuple[str, ...] = (),
) -> None:
    """Login, read each secret (some twice), issue database credentials, revoke the token."""
    w.v(ts, job.role, "update", "auth/approle/login", ip, token, tag=tag)
    paths = [f"secret/data/{s}" for s in job.secrets for _ in range(1 + (rng.random() < 0.3))]
    paths += list(job.creds) + list(extra)
    times = _gaps(rng, ts, len(paths) + 1, 0.5, 35.0)
    for at, path in zip(times, paths, strict=False):
        op = "list" if path.endswith("/") else "read"
        w.v(at, job.role, op, path, ip, token, tag=tag)
    w.v(times[-1], job.role, "update", "auth/token/revoke-self", ip, token, tag=tag)


def ci(w: World) -> None:
    """GitLab pipelines (JWT role `ci-deploy`) on weekdays plus a nightly build; Terraform
    Cloud plans (JWT role `tfc-plan`) in working hours."""
    cal = w.cal
    rng, nrng = _rngs(w.seed, "ci")
    w.homes["ci-deploy"] = list(CI_RUNNERS)
    kubeconfigs = [f"ci/deploy/{s.ns}/{s.name}/kubeconfig" for s in SERVICES]
    for day in range(cal.days):
        runs = [cal.t(day, 2.0) + rng.randint(0, 300) * SECOND]  # nightly build
        if cal.workday(day):
            n = int(nrng.poisson(12 * cal.scale))
            runs += [cal.t(day, rng.uniform(8.0, 19.0)) for _ in range(n)]
        for i, ts in enumerate(sorted(runs)):
            ip, token = rng.choice(CI_RUNNERS), f"p{day}.{i}"
            paths = ["ci/registry/push-token"]
            if i:  # the first run is the nightly build (02:00): it deploys nothing
                paths.append(rng.choice(kubeconfigs))
            if rng.random() < 0.4:
                paths.append("ci/sonarqube/token")
            w.v(ts, "ci-deploy", "update", "auth/jwt/login", ip, token)
            for at, p in zip(_gaps(rng, ts, len(paths), 1.0, 20.0), paths, strict=True):
                w.v(at, "ci-deploy", "read", f"secret/data/{p}", ip, token)
        if cal.workday(day):
            for i in range(int(nrng.poisson(4 * cal.scale))):
                ts, ip = cal.t(day, rng.uniform(9.0, 18.0)), rng.choice(TFC_ADDRESSES)
                w.v(ts, "tfc-plan", "update", "auth/jwt/login", ip, f"t{day}.{i}")
                at = _gaps(rng, ts, 2, 0.5, 4.0)
                w.v(
                    at[0],
                    "tfc-plan",
                    "read",
                    "secret/data/platform/terraform/state-key",
                    ip,
                    f"t{day}.{i}",
                )
                w.v(at[1], "tfc-plan", "read", "aws/creds/tf-plan", ip, f"t{day}.{i}")


def rotator(w: World) -> None:
    """`secret-rotator` writes a new version of each service secret every 30 days at 01:15,
    and rotates static database roles on Mondays."""
    cal = w.cal
    rng, _ = _rngs(w.seed, "rotator")
    kv = sorted(s for svc in SERVICES for s in svc.secrets)
    db_apps = sorted(s.name for s in SERVICES if s.db)
    for day in range(cal.days):
        due = [s for s in kv if (day + _stable(s)) % 30 == 0]
        monday = cal.weekday(day) == 0
        if not due and not monday:
            continue
        ts, ip, token = cal.t(day, 1.25) + rng.randint(0, 120) * SECOND, BATCH_NODES[0], f"r{day}"
        calls = [("update", "auth/approle/login")]
        for s in due:
            calls += [
                ("read", f"secret/metadata/{s}"),
                ("update", f"secret/data/{s}"),
                ("read", f"secret/data/{s}"),
            ]
        if monday:
            calls += [("update", f"database/rotate-role/{a}") for a in db_apps]
        calls.append(("update", "auth/token/revoke-self"))
        for at, (op, path) in zip(_gaps(rng, ts, len(calls), 0.2, 3.0), calls, strict=True):
            w.v(at, "secret-rotator", op, path, ip, token)


def _typo(rng: random.Random, team: str) -> str:
    """A path a person mistypes or is not granted."""
    mine = rng.choice(team_secrets(team))
    other = rng.choice(sorted(s for s, t in KV_OWNER.items() if t not in (team, "shared")))
    return f"secret/data/{rng.choice([mine + 's', mine.replace('/', '-', 1), other])}"


def human(w: World, h: Human) -> None:
    """Working days 08:30-18:30 with jitter, reading and listing their team's secrets, an
    occasional denied typo, a vacation week, and night pages in on-call weeks."""
    cal = w.cal
    rng, nrng = _rngs(w.seed, "human", h.identity)
    ips = [f"10.8.{rng.randrange(0, 4)}.{rng.randrange(2, 255)}" for _ in range(3)]
    w.homes[h.identity] = ips
    mine = team_secrets(h.team)
    favourites = rng.sample(mine, min(4, len(mine)))
    vacation = range(0)
    if cal.train_days > 28:
        first = rng.randrange(14, cal.train_days - 7)
        vacation = range(first, first + 7)
    incident_day = cal.detect_day(0.5)
    login = "auth/oidc/oidc/callback" if h.method == "oidc" else f"auth/userpass/login/{h.identity}"
    login_op = "read" if h.method == "oidc" else "update"

    def session(ts: int, bursts: int, span_h: float, ip: str, token: str) -> None:
        w.v(ts, h.identity, login_op, login, ip, token)
        for _ in range(bursts):
            at = ts + int(rng.uniform(0.02, span_h) * HOUR)
            calls: list[tuple[str, str]] = []
            if rng.random() < 0.4:
                calls.append(("list", f"secret/metadata/{h.team}/"))
            for _ in range(1 + int(nrng.poisson(1.5))):
                name = rng.choice(favourites) if rng.random() < 0.7 else rng.choice(mine)
                op = "read"
                if rng.random() < 0.1:
                    calls.append((op, f"secret/metadata/{name}"))
                calls.append((op, f"secret/data/{name}"))
            if rng.random() < 0.15:
                calls.append(("read", f"secret/data/{rng.choice(SHARED)}"))
            for t2, (op, path) in zip(_gaps(rng, at, len(calls), 2.0, 40.0), calls, strict=True):
                w.v(t2, h.identity, op, path, ip, token)

    for day in range(cal.days):
        week_oncall = ONCALL[(day // 7) % len(ONCALL)] == h.identity
        if cal.workday(day) and day not in vacation:
            start = cal.t(day, 8.5 + rng.gauss(0, 0.4))
            end = cal.t(day, 18.5 + rng.gauss(0, 0.6))
            span = (end - start) / HOUR
            ip = rng.choice(ips)
            session(start, int(nrng.poisson(4)), span, ip, f"d{day}")
            if rng.random() < 0.2:
                ts = start + int(rng.uniform(0.1, span) * HOUR)
                w.v(ts, h.identity, "read", _typo(rng, h.team), ip, f"d{day}", DENIED)
        if h.oncall and week_oncall and day == incident_day:
            ts = cal.t(day, 1.1 + rng.random() * 0.3)
            session(ts, 9, 2.5, rng.choice(ips), f"n{day}")
            w.changes.append(
                {
                    "kind": "oncall_night",
                    "source": "vault",
                    "identity": h.identity,
                    "start": iso(ts),
                    "end": iso(ts + 3 * HOUR),
                    "description": "on-call engineer works an incident 01:00-04:00 from the VPN, "
                    "reading the team's secrets",
                }
            )
        elif h.oncall and week_oncall and rng.random() < 0.3:
            session(
                cal.t(day, rng.uniform(0.2, 5.0)),
                1 + int(nrng.poisson(1)),
                0.5,
                rng.choice(ips),
                f"n{day}",
            )


# --------------------------------------------------------------------------- AWS behaviour


def _public_lambda_ip(rng: random.Random) -> str:
    """Lambda outside a VPC calls from the region's public EC2 ranges."""
    a, b = rng.choice(((3, 249), (34, 240), (52, 16), (54, 78)))
    return f"{a}.{b}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"


def aws_task(w: World, role: Role) -> None:
    """ECS tasks and Lambda functions reading their secrets all day (SDK cache misses)."""
    cal = w.cal
    rng, nrng = _rngs(w.seed, "aws", role.name)
    times = poisson_times(nrng, cal, cal.rates(role.peak, role.curve))
    deploys = _deploy_times(rng, cal, 0, 5, False)
    if role.kind == "ecs":
        tasks = [
            [
                (
                    uuid.UUID(int=rng.getrandbits(128)).hex,
                    f"10.20.{rng.randrange(32, 48)}.{rng.randrange(2, 255)}",
                )
                for _ in range(2)
            ]
            for _ in deploys
        ]
    else:
        tasks = [[(role.name.replace("-lambda", "-handler"), "")] for _ in deploys]
    w.deploys[role.arn] = (deploys, [[ip for _, ip in t] for t in tasks])
    epochs = np.searchsorted(np.array(deploys), times, side="right") - 1
    lambda_ip: dict[int, str] = {}
    for ts, e in zip(times.tolist(), epochs.tolist(), strict=True):
        session, ip = rng.choice(tasks[e])
        if not ip:
            ip = lambda_ip.setdefault(ts // (20 * MINUTE), _public_lambda_ip(rng))
        event = "DescribeSecret" if rng.random() < 0.08 else "GetSecretValue"
        w.a(ts, role.name, event, rng.choice(role.secrets), ip, session)


def aws_scheduled(w: World) -> None:
    """analytics-etl hourly at :05, billing export daily at 06:00, ML training on Saturdays,
    and the rotation Lambda's four steps for each secret due."""
    cal = w.cal
    rng, _ = _rngs(w.seed, "aws", "scheduled")
    etl, billing = ROLE_BY_NAME["analytics-etl"], ROLE_BY_NAME["billing-export-lambda"]
    ml, rot = ROLE_BY_NAME["ml-training"], ROLE_BY_NAME["secrets-rotation-lambda"]
    instance = "i-0" + format(rng.getrandbits(64), "016x")
    w.homes[etl.arn] = ["10.20.5.23"]
    for day in range(cal.days):
        for hour in range(24):
            ts = cal.t(day, hour + 5 / 60) + rng.randint(0, 40) * SECOND
            for at, s in zip(_gaps(rng, ts, 3, 0.1, 2.0), etl.secrets, strict=True):
                w.a(at, etl.name, "GetSecretValue", s, "10.20.5.23", instance)
        ts = cal.t(day, 6.0) + rng.randint(0, 90) * SECOND
        ip = _public_lambda_ip(rng)
        for at, s in zip(_gaps(rng, ts, 2, 0.1, 1.0), billing.secrets, strict=True):
            w.a(at, billing.name, "GetSecretValue", s, ip, "billing-export-handler")
        if cal.weekday(day) == 5:
            ts, job = cal.t(day, 10.0) + rng.randint(0, 300) * SECOND, f"SageMaker-{day:04d}"
            for at, (ev, s) in zip(
                _gaps(rng, ts, 3, 1.0, 5.0),
                [
                    ("DescribeSecret", ml.secrets[0]),
                    ("GetSecretValue", ml.secrets[0]),
                    ("GetSecretValue", ml.secrets[1]),
                ],
                strict=True,
            ):
                w.a(at, ml.name, ev, s, "10.20.9.14", job)
        for s in rot.secrets:
            if (day + _stable(s)) % 30 != 0:
                continue
            ts, ip = cal.t(day, 3.0) + rng.randint(0, 600) * SECOND, _public_lambda_ip(rng)
            steps = [
                "RotateSecret",
                "DescribeSecret",
                "GetSecretValue",
                "GetRandomPassword",
                "PutSecretValue",
                "DescribeSecret",
                "GetSecretValue",
                "UpdateSecretVersionStage",
            ]
            for at, ev in zip(_gaps(rng, ts, len(steps), 0.2, 3.0), steps, strict=True):
                w.a(
                    at,
                    rot.name,
                    ev,
                    None if ev == "GetRandomPassword" else s,
                    ip,
                    "secrets-rotation-handler",
                )


def aws_people(w: World) -> None:
    """Developers through the SSO developer role in working hours; an admin now and then."""
    cal = w.cal
    rng, nrng = _rngs(w.seed, "aws", "people")
    office = [f"192.0.2.{n}" for n in range(10, 15)]
    for day in range(cal.days):
        if not cal.workday(day):
            continue
        for person, secrets in SSO_TEAMS.items():
            ts = cal.t(day, rng.uniform(9.0, 17.5))
            for at in _gaps(rng, ts, int(nrng.poisson(5)), 3.0, 400.0):
                roll = rng.random()
                event = (
                    "ListSecrets"
                    if roll < 0.15
                    else "DescribeSecret"
                    if roll < 0.45
                    else "GetSecretValue"
                )
                secret = None if event == "ListSecrets" else rng.choice(secrets)
                error = "ResourceNotFoundException" if rng.random() < 0.01 else None
                w.a(at, SSO_DEV, event, secret, rng.choice(office), person, error)
        if rng.random() < 0.3:
            ts = cal.t(day, rng.uniform(9.5, 17.0))
            for at in _gaps(rng, ts, rng.randint(2, 6), 5.0, 200.0):
                event = rng.choice(("DescribeSecret", "ListSecrets", "GetSecretValue"))
                secret = None if event == "ListSecrets" else rng.choice(AWS_SECRETS)
                w.a(at, SSO_ADMIN, event, secret, rng.choice(office), "carol@example.com")


# --------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class Attack:
    id: str
    kind: str
    source: str
    identity: str
    at: float  # fraction of the detection period
    run: Callable[[World, random.Random, str, int], str]  # -> description


def _stolen_token_vault(w: World, rng: random.Random, tag: str, day: int) -> str:
    ts = w.cal.t(day, 2.0 + rng.random() * 1.5)
    calls = [
        ("read", "auth/token/lookup-self"),
        ("list", "secret/metadata/"),
        ("list", "secret/metadata/orders/"),
    ]
    calls += [("read", f"secret/data/{s}") for s in team_secrets("orders")[:5]]
    calls.append(("read", "secret/data/shared/datadog/api-key"))
    for at, (op, path) in zip(_gaps(rng, ts, len(calls), 5.0, 90.0), calls, strict=True):
        w.v(at, "bob", op, path, OUTSIDE_VAULT, f"d{day - 1}", tag=tag, agent="curl/8.5.0")
    return f"bob's Vault token used at night from {OUTSIDE_VAULT} with curl"


def _cross_team(w: World, rng: random.Random, tag: str, day: int) -> str:
    ts = w.cal.t(day, 14.0 + rng.random() * 0.5)
    targets = team_secrets("payments")[:5]
    for at, s in zip(_gaps(rng, ts, len(targets), 60.0, 400.0), targets, strict=True):
        ip, token = w.pod_at("search/query-api", at, rng)
        w.v(at, "search/query-api", "read", f"secret/data/{s}", ip, token, tag=tag)
    return "search/query-api reads five payments-team secrets from its own pods"


def _enumeration_vault(w: World, rng: random.Random, tag: str, day: int) -> str:
    ts = w.cal.t(day, 15.0 + rng.random() * 0.5)
    ip, token = w.pod_at("orders/cart-svc", ts, rng)
    calls = [("list", "secret/metadata/", None)]
    calls += [
        ("list", f"secret/metadata/{t}/", None)
        for t in ("payments", "orders", "search", "identity", "analytics", "platform")
    ]
    own = set(next(s for s in SERVICES if s.identity == "orders/cart-svc").secrets)
    names = rng.sample(sorted(s for s in KV_OWNER if s not in own), 36)
    calls += [("read", f"secret/data/{s}", DENIED if rng.random() < 0.15 else None) for s in names]
    for at, (op, path, err) in zip(_gaps(rng, ts, len(calls), 1.0, 8.0), calls, strict=True):
        w.v(at, "orders/cart-svc", op, path, ip, token, err, tag=tag)
    return "orders/cart-svc lists every team folder and reads 36 distinct secrets in minutes"


def _rate_spike(w: World, rng: random.Random, tag: str, day: int) -> str:
    svc = next(s for s in SERVICES if s.identity == "identity/session-svc")
    hour = 11
    usual = w.cal.rates(svc.peak, svc.curve)[day * 24 + hour]
    n = max(60, round(12 * usual))
    start = w.cal.t(day, hour)
    paths = [f"secret/data/{s}" for s in svc.secrets]
    for at in sorted(start + rng.randrange(HOUR) for _ in range(n)):
        ip, token = w.pod_at(svc.identity, at, rng)
        w.v(at, svc.identity, "read", rng.choice(paths), ip, token, tag=tag)
    return f"identity/session-svc reads its secrets {n} times in one hour (12x its rate)"


def _denied_probing_vault(w: World, rng: random.Random, tag: str, day: int) -> str:
    ts, ip = w.cal.t(day, 10.0 + rng.random() * 0.5), rng.choice(CI_RUNNERS)
    paths = [
        ("read", f"secret/data/{s}")
        for s in rng.sample(sorted(s for s, t in KV_OWNER.items() if t not in ("ci", "shared")), 18)
    ]
    paths += [
        ("list", "sys/policies/acl"),
        ("read", "sys/mounts"),
        ("read", "database/creds/payments-api"),
        ("read", "database/creds/auth-gateway"),
        ("update", "auth/token/create"),
        ("list", "secret/metadata/"),
        ("read", "aws/creds/tf-plan"),
    ]
    for at, (op, path) in zip(_gaps(rng, ts, len(paths), 1.0, 12.0), paths, strict=True):
        w.v(at, "ci-deploy", op, path, ip, "probe", DENIED, tag=tag)
    return "a CI job token probes 25 paths outside its policy within minutes, all denied"


def _low_and_slow(w: World, rng: random.Random, tag: str, day: int) -> str:
    targets = rng.sample(
        [s for s, t in sorted(KV_OWNER.items()) if t in ("payments", "identity", "orders")], 10
    )
    ts = w.cal.t(day, 8.0 + rng.random())
    for s in targets:
        since_start = ts - w.cal.t(0)
        if since_start % DAY > 20 * HOUR:  # working hours only: carry on the next morning
            ts = w.cal.t(since_start // DAY + 1, 8.0 + rng.random())
        ip, token = w.pod_at("analytics/feature-store", ts, rng)
        w.v(ts, "analytics/feature-store", "read", f"secret/data/{s}", ip, token, tag=tag)
        ts += int(rng.uniform(3.0, 5.0) * HOUR)
    return "analytics/feature-store reads one other-team secret every 3-5 h over three days"


def _dormant(w: World, rng: random.Random, tag: str, day: int) -> str:
    job = next(b for b in BATCHES if b.role == "legacy-cron")
    ts = w.cal.t(day, 11.0 + rng.random() * 0.5)
    extra = (
        "secret/metadata/platform/",
        "secret/data/platform/db-backup/s3-creds",
        "secret/data/platform/terraform/state-key",
    )
    batch_run(w, rng, job, ts, "10.0.12.77", "back", tag=tag, extra=extra)
    return "legacy-cron, silent since its first weeks, logs in again and reads more than before"


def _stolen_token_aws(w: World, rng: random.Random, tag: str, day: int) -> str:
    ts = w.cal.t(day, 2.5 + rng.random() * 1.5)
    calls: list[tuple[str, str | None, str | None]] = [
        ("ListSecrets", None, None),
        ("GetSecretValue", "prod/payments/api-key", None),
        ("GetSecretValue", "prod/payments/db", None),
        ("DescribeSecret", "prod/payments/card-vault-token", None),
        ("GetSecretValue", "prod/payments/card-vault-token", "AccessDenied"),
        ("GetSecretValue", "prod/billing/db", "AccessDenied"),
    ]
    for at, (ev, s, err) in zip(_gaps(rng, ts, len(calls), 10.0, 120.0), calls, strict=True):
        w.a(at, "payments-lambda", ev, s, OUTSIDE_AWS, "payments-handler", err, tag, CLI_AGENT)
    return f"payments-lambda's session credentials used from {OUTSIDE_AWS} at night (aws-cli)"


def _enumeration_aws(w: World, rng: random.Random, tag: str, day: int) -> str:
    role = ROLE_BY_NAME["analytics-etl"]
    ts = w.cal.t(day, 13.5 + rng.random() * 0.5)
    calls: list[tuple[str, str | None, str | None]] = [("ListSecrets", None, None)] * 2
    for s in rng.sample([s for s in AWS_SECRETS if s not in role.secrets], 20):
        calls.append(("GetSecretValue", s, "AccessDenied" if rng.random() < 0.3 else None))
    for at, (ev, s, err) in zip(_gaps(rng, ts, len(calls), 2.0, 10.0), calls, strict=True):
        w.a(at, role.name, ev, s, "10.20.5.23", "i-attacker-shell", err, tag, CLI_AGENT)
    return "analytics-etl's instance role lists secrets and reads 20 others within minutes"


def _denied_probing_aws(w: World, rng: random.Random, tag: str, day: int) -> str:
    role = ROLE_BY_NAME["reporting-api-task"]
    ts = w.cal.t(day, 16.0 + rng.random() * 0.5)
    times, pods = w.deploys[role.arn]
    ip = pods[int(np.searchsorted(np.array(times), ts, side="right")) - 1][0]
    targets = rng.sample([s for s in AWS_SECRETS if s not in role.secrets], 15)
    for at, s in zip(_gaps(rng, ts, len(targets), 2.0, 14.0), targets, strict=True):
        w.a(
            at,
            role.name,
            "GetSecretValue",
            s,
            ip,
            "ecs-exec-session",
            "AccessDenied",
            tag,
            CLI_AGENT,
        )
    return "reporting-api-task's role is denied on 15 other secrets within minutes"


def _root_token(w: World, rng: random.Random, tag: str, day: int) -> str:
    ts = w.cal.t(day, 10.5 + rng.random() * 0.4)
    calls = [
        ("read", "sys/auth"),
        ("read", "sys/mounts"),
        ("list", "sys/policies/acl"),
        ("read", "sys/policies/acl/admin"),
        ("read", "sys/audit"),
    ]
    calls += [
        ("read", f"secret/data/{s}")
        for s in (
            "payments/payments-api/stripe-api-key",
            "identity/auth-gateway/jwt-signing-key",
            "orders/orders-api/db",
            "platform/db-backup/gpg-key",
            "shared/tls/wildcard",
        )
    ]
    calls.append(("read", "auth/token/lookup-self"))
    for at, (op, path) in zip(_gaps(rng, ts, len(calls), 5.0, 60.0), calls, strict=True):
        w.v(
            at,
            "root",
            op,
            path,
            ROOT_ADDRESS,
            "root",
            tag=tag,
            agent="Vault/1.15.2 (+https://www.vaultproject.io/; go1.21.3)",
        )
    return "the root token reads sys/ configuration and five secrets of different teams"


ATTACKS = (
    Attack("A1", "stolen_token_night", "vault", "bob", 0.07, _stolen_token_vault),
    Attack("A2", "cross_team", "vault", "search/query-api", 0.13, _cross_team),
    Attack("A3", "enumeration", "vault", "orders/cart-svc", 0.2, _enumeration_vault),
    Attack(
        "A4",
        "stolen_token_night",
        "aws",
        ROLE_BY_NAME["payments-lambda"].arn,
        0.27,
        _stolen_token_aws,
    ),
    Attack("A5", "rate_spike", "vault", "identity/session-svc", 0.33, _rate_spike),
    Attack("A6", "denied_probing", "vault", "ci-deploy", 0.4, _denied_probing_vault),
    Attack("A7", "low_and_slow", "vault", "analytics/feature-store", 0.47, _low_and_slow),
    Attack("A8", "enumeration", "aws", ROLE_BY_NAME["analytics-etl"].arn, 0.57, _enumeration_aws),
    Attack("A9", "dormant", "vault", "legacy-cron", 0.67, _dormant),
    Attack(
        "A10",
        "denied_probing",
        "aws",
        ROLE_BY_NAME["reporting-api-task"].arn,
        0.77,
        _denied_probing_aws,
    ),
    Attack("A11", "root_token", "vault", "root", 0.9, _root_token),
)
_NIGHT_KINDS = {"stolen_token_night", "low_and_slow"}  # these may fall on any day


def run_attacks(w: World) -> dict[str, dict]:
    """Inject every attack; returns their labels without event ids (the writers add them)."""
    out = {}
    for attack in ATTACKS:
        rng, _ = _rngs(w.seed, "attack", attack.id)
        day = w.cal.detect_day(attack.at)
        if attack.kind not in _NIGHT_KINDS:
            day = w.cal.weekday_near(day)
        description = attack.run(w, rng, attack.id, day)
        out[attack.id] = {
            "id": attack.id,
            "kind": attack.kind,
            "source": attack.source,
            "identity": attack.identity,
            "description": description,
        }
    return out


# --------------------------------------------------------------------------- writers


def iso(ts_us: int) -> str:
    """ISO-8601 UTC with a `Z`, microseconds only when there are any."""
    sec, us = divmod(ts_us, SECOND)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{base}.{us:06d}Z" if us else f"{base}Z"


def _hmac(rng: random.Random) -> str:
    return f"hmac-sha256:{rng.getrandbits(256):064x}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class VaultActor:
    """How an identity's tokens look in the audit log."""

    identity: str
    display_name: str
    metadata: dict | None
    policies: tuple[str, ...]
    entity_id: str
    agent: str
    ttl: int


def vault_actors(seed: int) -> dict[str, VaultActor]:
    rng, _ = _rngs(seed, "vault-actors")

    def entity() -> str:
        return _uuid(rng)

    out = {}
    for svc in (*SERVICES, NEW_SERVICE):
        meta = {
            "role": svc.name,
            "service_account_name": svc.name,
            "service_account_namespace": svc.ns,
            "service_account_secret_name": "",
            "service_account_uid": _uuid(rng),
        }
        out[svc.identity] = VaultActor(
            svc.identity,
            f"kubernetes-{svc.ns}-{svc.name}",
            meta,
            ("default", f"{svc.ns}-{svc.name}"),
            entity(),
            svc.agent,
            3600,
        )
    for job in BATCHES:
        out[job.role] = VaultActor(
            job.role,
            "approle",
            {"role_name": job.role},
            ("default", f"batch-{job.role}"),
            entity(),
            HVAC,
            1800,
        )
    out["secret-rotator"] = VaultActor(
        "secret-rotator",
        "approle",
        {"role_name": "secret-rotator"},
        ("default", "kv-rotate", "db-rotate"),
        entity(),
        GOCLIENT,
        1800,
    )
    out["ci-deploy"] = VaultActor(
        "ci-deploy",
        "jwt-gitlab-ci",
        {"role": "ci-deploy", "namespace_path": "shop"},
        ("default", "ci-deploy"),
        entity(),
        GOCLIENT,
        900,
    )
    out["tfc-plan"] = VaultActor(
        "tfc-plan",
        "jwt-organization:shop:workspace:platform",
        {"role": "tfc-plan"},
        ("default", "tfc-plan"),
        entity(),
        "go-tfe/1.44.0",
        1200,
    )
    for h in HUMANS:
        if h.method == "oidc":
            meta: dict = {
                "email": h.identity,
                "role": "employee",
                "account_id": str(rng.getrandbits(60)),
            }
            display = f"oidc-{meta['account_id']}"
        else:
            meta, display = {"username": h.identity}, f"userpass-{h.identity}"
        out[h.identity] = VaultActor(
            h.identity,
            display,
            meta,
            ("default", f"team-{h.team}", "human"),
            entity(),
            h.agent,
            43200,
        )
    out["root"] = VaultActor("root", "root", None, ("root",), "", "vault", 0)
    return out


_MOUNTS = (  # path prefix -> (mount point, type, accessor, class)
    ("secret/", ("secret/", "kv", "kv_5f3c1a2b", "secret")),
    ("database/", ("database/", "database", "database_8e2b0d71", "secret")),
    ("aws/", ("aws/", "aws", "aws_3c9d2e10", "secret")),
    ("auth/token/", ("auth/token/", "token", "auth_token_5be3eba0", "auth")),
    ("auth/kubernetes/", ("auth/kubernetes/", "kubernetes", "auth_kubernetes_1d5e7f90", "auth")),
    ("auth/approle/", ("auth/approle/", "approle", "auth_approle_4a6b8c0d", "auth")),
    ("auth/jwt/", ("auth/jwt/", "jwt", "auth_jwt_ecc6d73c", "auth")),
    ("auth/oidc/", ("auth/oidc/", "oidc", "auth_oidc_2f4e6a8c", "auth")),
    ("auth/userpass/", ("auth/userpass/", "userpass", "auth_userpass_7b9d1f3e", "auth")),
    ("sys/", ("sys/", "system", "system_b1a2c3d4", "")),
)
_LOGINS = (
    "auth/kubernetes/login",
    "auth/approle/login",
    "auth/jwt/login",
    "auth/oidc/oidc/callback",
    "auth/userpass/login/",
)


def _mount(path: str) -> tuple[str, str, str, str]:
    for prefix, mount in _MOUNTS:
        if path.startswith(prefix):
            return mount
    return ("", "", "", "")


class VaultWriter:
    """Renders calls as request + response audit entries, shaped like Vault 1.15's."""

    def __init__(self, seed: int, actors: dict[str, VaultActor]) -> None:
        self.rng, _ = _rngs(seed, "vault-writer")
        self.actors = actors
        self.tokens: dict[tuple[str, str], dict] = {}

    def _auth(self, actor: VaultActor, token: str, ts: int) -> dict:
        key = (actor.identity, token)
        auth = self.tokens.get(key)
        if auth is None:
            auth = {
                "client_token": _hmac(self.rng),
                "accessor": _hmac(self.rng),
                "display_name": actor.display_name,
                "policies": list(actor.policies),
                "token_policies": list(actor.policies),
            }
            if actor.metadata is not None:
                auth["metadata"] = actor.metadata
            if actor.entity_id:
                auth["entity_id"] = actor.entity_id
            auth.update(
                {
                    "token_type": "service",
                    "token_ttl": actor.ttl,
                    "token_issue_time": iso(ts - ts % SECOND),
                }
            )
            self.tokens[key] = auth
        return auth

    def _response(self, op: str, path: str, mount: tuple[str, str, str, str], auth: dict) -> dict:
        rng = self.rng
        out: dict = {
            "mount_point": mount[0],
            "mount_type": mount[1],
            "mount_accessor": mount[2],
            "mount_running_plugin_version": "v0.20.0+builtin"
            if mount[1] == "kv"
            else "v1.15.2+builtin.vault",
        }
        if path.startswith(_LOGINS) or path == "auth/token/renew-self":
            out["auth"] = {
                k: auth[k]
                for k in ("client_token", "accessor", "display_name", "policies", "token_policies")
                if k in auth
            }
            out["auth"]["token_ttl"] = auth["token_ttl"]
        elif op == "list":
            out["data"] = {"keys": [_hmac(rng) for _ in range(rng.randint(2, 6))]}
        elif path.startswith("secret/metadata/"):
            out["data"] = {
                "created_time": _hmac(rng),
                "current_version": 1 + _stable(path) % 9,
                "max_versions": 0,
                "oldest_version": 0,
                "updated_time": _hmac(rng),
            }
        elif path.startswith("secret/data/"):
            meta = {
                "created_time": _hmac(rng),
                "custom_metadata": None,
                "deletion_time": _hmac(rng),
                "destroyed": False,
                "version": 1 + _stable(path) % 9,
            }
            out["data"] = (
                meta if op == "update" else {"data": {"value": _hmac(rng)}, "metadata": meta}
            )
        elif "/creds/" in path:
            out["secret"] = {"lease_id": f"{path}/{format(rng.getrandbits(96), '024x')}"}
            out["data"] = {"password": _hmac(rng), "username": _hmac(rng)}
        elif path in ("auth/token/lookup-self", "sys/leases/renew") or op == "read":
            out["data"] = {"accessor": _hmac(rng), "ttl": rng.randint(60, 3600)}
        return out

    def lines(self, call: VaultCall) -> tuple[bytes, str, int]:
        """(request + response lines, event id, response time)."""
        ts, who, op, path, ip, token, error, _, agent = call
        actor, rng = self.actors[who], self.rng
        rid = _uuid(rng)
        auth = self._auth(actor, token, ts)
        mount = _mount(path)
        login = path.startswith(_LOGINS)
        request = {
            "id": rid,
            "client_id": actor.entity_id,
            "operation": op,
            "mount_point": mount[0],
            "mount_type": mount[1],
            "mount_accessor": mount[2],
            "mount_class": mount[3],
            "namespace": {"id": "root"},
            "path": path,
            "remote_address": ip,
            "remote_port": rng.randint(30000, 65000),
            "headers": {"user-agent": [agent or actor.agent]},
        }
        if login:
            del request["client_id"]  # not authenticated yet
        else:
            request["client_token"] = auth["client_token"]
            request["client_token_accessor"] = auth["accessor"]
        if op in ("update", "create") and path.startswith("secret/data/"):
            request["data"] = {"data": {"value": _hmac(rng)}, "options": {}}
        granted = {
            "allowed": True,
            "granting_policies": [
                {"name": actor.policies[-1], "namespace_id": "root", "type": "acl"}
            ],
        }
        if login:
            req_auth: dict = {"policy_results": {"allowed": True}, "token_type": "default"}
        else:
            req_auth = {**auth, "policy_results": {"allowed": False} if error else granted}
        entry = {
            "time": _vault_time(ts, rng),
            "type": "request",
            "auth": req_auth,
            "request": request,
        }
        done = ts + (rng.randint(100, 600) if error else rng.randint(400, 30000))
        resp_auth = auth if login else req_auth
        response: dict = {
            "time": _vault_time(done, rng),
            "type": "response",
            "auth": resp_auth,
            "request": request,
        }
        if error:
            entry["error"] = error
            response["error"] = DENIED_RESPONSE if error == DENIED else error
        else:
            response["response"] = self._response(op, path, mount, auth)
        return orjson.dumps(entry) + b"\n" + orjson.dumps(response) + b"\n", rid, done


def _vault_time(ts_us: int, rng: random.Random) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed, as Go writes it."""
    sec, us = divmod(ts_us, SECOND)
    frac = f"{us:06d}{rng.randrange(1000):03d}".rstrip("0")
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def write_vault(path: Path, w: World) -> dict[str, list[tuple[str, int]]]:
    """Write the audit log in call order; returns attack id -> [(event id, event time)]."""
    writer = VaultWriter(w.seed, vault_actors(w.seed))
    tagged: dict[str, list[tuple[str, int]]] = {}
    w.vault.sort(key=lambda c: c[0])
    with path.open("wb") as out:
        buf: list[bytes] = []
        for call in w.vault:
            data, rid, done = writer.lines(call)
            buf.append(data)
            if call[7]:
                tagged.setdefault(call[7], []).append((rid, done))
            if len(buf) >= 20_000:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))
    return tagged


_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _secret_arn(name: str) -> str:
    """The secret's ARN with the 6-character suffix Secrets Manager appends."""
    rng = random.Random(_stable(name))
    suffix = "".join(rng.choice(_SUFFIX_CHARS) for _ in range(6))
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-{suffix}"


_WRITES = {"PutSecretValue", "UpdateSecretVersionStage", "RotateSecret"}
_VPC = {"ecs", "ec2", "sagemaker"}


class AwsWriter:
    """Renders calls as CloudTrail records as Secrets Manager logs them."""

    def __init__(self, seed: int) -> None:
        self.rng, _ = _rngs(seed, "aws-writer")
        self.ids = {r.name: "AROA" + format(self.rng.getrandbits(64), "016X") for r in ROLES}

    def _key(self, who: str, session: str, created: int) -> str:
        """A session's temporary access key id (sessions last an hour here)."""
        digest = hashlib.sha256(f"{who}/{session}/{created}".encode()).hexdigest()
        return "ASIA" + digest[:16].upper()

    def _params(self, event: str, sid: str | None) -> dict | None:
        rng = self.rng
        if event == "ListSecrets":
            return {"maxResults": 100}
        if event == "GetRandomPassword":
            return {"passwordLength": 32, "excludeCharacters": "/@\"'\\"}
        if event == "PutSecretValue":
            return {
                "secretId": sid,
                "clientRequestToken": _uuid(rng),
                "versionStages": ["AWSPENDING"],
            }
        if event == "UpdateSecretVersionStage":
            return {
                "secretId": sid,
                "versionStage": "AWSCURRENT",
                "moveToVersionId": _uuid(rng),
                "removeFromVersionId": _uuid(rng),
            }
        return {"secretId": sid}

    def record(self, call: AwsCall) -> tuple[dict, str, int]:
        ts, who, event, secret, ip, session, error, _, agent = call
        role, rng = ROLE_BY_NAME[who], self.rng
        ts -= ts % SECOND  # CloudTrail logs whole seconds
        sid = None
        if secret is not None:
            sid = _secret_arn(secret) if role.by_arn or secret.startswith("arn:") else secret
        created = ts - (ts % HOUR)
        eid = _uuid(rng)
        identity = {
            "type": "AssumedRole",
            "principalId": f"{self.ids[who]}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.name}/{session}",
            "accountId": ACCOUNT,
            "accessKeyId": self._key(who, session, created),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": self.ids[who],
                    "arn": role.arn,
                    "accountId": ACCOUNT,
                    "userName": role.name,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": iso(created), "mfaAuthenticated": "false"},
            },
        }
        rec: dict = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": iso(ts),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": event,
            "awsRegion": REGION,
            "sourceIPAddress": ip,
            "userAgent": agent or role.agent,
        }
        if error:
            rec["errorCode"] = error
            rec["errorMessage"] = (
                f"User: {identity['arn']} is not authorized to perform: secretsmanager:{event} "
                f"on resource: {sid} because no identity-based policy allows the "
                f"secretsmanager:{event} action"
                if error == "AccessDenied"
                else "Secrets Manager can't find the specified secret."
            )
        rec["requestParameters"] = self._params(event, sid)
        rec["responseElements"] = None
        if event in _WRITES and not error and secret is not None:
            rec["responseElements"] = {
                "aRN": _secret_arn(secret),
                "name": secret,
                "versionId": _uuid(rng),
            }
        rec.update(
            {
                "requestID": _uuid(rng),
                "eventID": eid,
                "readOnly": event not in _WRITES,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": ACCOUNT,
                "eventCategory": "Management",
            }
        )
        if role.kind in _VPC and not agent:
            rec["vpcEndpointId"] = "vpce-0a1b2c3d4e5f60718"
            rec["vpcEndpointAccountId"] = ACCOUNT
        rec["tlsDetails"] = {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"secretsmanager.{REGION}.amazonaws.com",
        }
        return rec, eid, ts


def write_aws(folder: Path, w: World) -> dict[str, list[tuple[str, int]]]:
    """One `{"Records": [...]}` file per day; returns attack id -> [(event id, event time)]."""
    writer = AwsWriter(w.seed)
    tagged: dict[str, list[tuple[str, int]]] = {}
    w.aws.sort(key=lambda c: c[0])
    by_day: dict[int, list[dict]] = {}
    for call in w.aws:
        rec, eid, ts = writer.record(call)
        by_day.setdefault((ts - w.cal.start_us) // DAY, []).append(rec)
        if call[7]:
            tagged.setdefault(call[7], []).append((eid, ts))
    for day, records in sorted(by_day.items()):
        name = time.strftime("%Y-%m-%d", time.gmtime(w.cal.t(day) // SECOND))
        (folder / f"{name}.json").write_bytes(orjson.dumps({"Records": records}))
    return tagged


# --------------------------------------------------------------------------- entry points


def _identities(cal: Calendar) -> list[dict]:
    out = [
        {
            "identity": s.identity,
            "source": "vault",
            "identity_kind": "service",
            "role": "kubernetes service",
            "team": s.ns,
        }
        for s in (*SERVICES, NEW_SERVICE)
    ]
    out += [
        {
            "identity": b.role,
            "source": "vault",
            "identity_kind": "service",
            "role": "approle batch job",
            "team": b.team,
        }
        for b in BATCHES
    ]
    out += [
        {
            "identity": "secret-rotator",
            "source": "vault",
            "identity_kind": "service",
            "role": "approle rotator",
            "team": "platform",
        },
        {
            "identity": "ci-deploy",
            "source": "vault",
            "identity_kind": "service",
            "role": "jwt ci",
            "team": "ci",
        },
        {
            "identity": "tfc-plan",
            "source": "vault",
            "identity_kind": "service",
            "role": "jwt ci",
            "team": "platform",
        },
    ]
    out += [
        {
            "identity": h.identity,
            "source": "vault",
            "identity_kind": "human",
            "role": f"{h.method} person" + (" (on call)" if h.oncall else ""),
            "team": h.team,
        }
        for h in HUMANS
    ]
    out.append(
        {
            "identity": "root",
            "source": "vault",
            "identity_kind": "root",
            "role": "root token (attack only)",
            "team": "platform",
        }
    )
    out += [
        {
            "identity": r.arn,
            "source": "aws",
            "identity_kind": "human" if r.kind == "sso" else "service",
            "role": f"iam role ({r.kind})",
            "team": r.team,
        }
        for r in ROLES
    ]
    return out


def _window_changes(cal: Calendar) -> list[dict]:
    """The holiday lull and its end, and the new service (which is not in `changes` yet)."""
    lull = cal.holiday
    new_at = cal.detect_day(NEW_SERVICE.deployed_at or 0.0)
    return [
        {
            "kind": "new_service",
            "source": "vault",
            "identity": NEW_SERVICE.identity,
            "start": iso(cal.t(new_at, 9.0)),
            "end": iso(cal.t(cal.days)),
            "description": "orders/returns-api deployed: a new identity reading its own new "
            "secrets and three shared ones",
        },
        {
            "kind": "holiday_lull",
            "source": "*",
            "identity": "*",
            "start": iso(cal.t(lull.start)),
            "end": iso(cal.t(lull.stop)),
            "description": "holiday week: services at half traffic, no people, no CI, no deploys",
        },
        {
            "kind": "holiday_end",
            "source": "*",
            "identity": "*",
            "start": iso(cal.t(lull.stop)),
            "end": iso(cal.t(min(cal.days, lull.stop + 3))),
            "description": "traffic, people and CI come back after the holiday",
        },
    ]


def generate(out_dir: Path, seed: int = 1, days: int = 120, scale: float = 1.0) -> dict:
    """Write the scenario into `out_dir` and return its labels (also in `labels.json`):

    `seed`, `days`, `scale`, `start`/`train_until`/`end` (ISO UTC), `detect_days`,
    `identities` (canonical identity as parsed, source, identity_kind, role, team),
    `attacks` (id, kind, source, identity, description, start, end, event_ids: the ids
    the parser gives the attack's calls), `changes` (legitimate: kind, source, identity or
    `*`, start, end, description), `oncall` (identity, start, end: who may be paged at night
    that week) and `counts` (Vault calls, CloudTrail records).
    """
    if days < 9:
        raise ValueError(f"days must be at least 9 (training plus detection); got {days}")
    cal = Calendar(days, scale)
    w = World(cal, seed)
    for svc in (*SERVICES, NEW_SERVICE):
        k8s_service(w, svc)
    for job in BATCHES:
        batch_job(w, job)
    ci(w)
    rotator(w)
    for h in HUMANS:
        human(w, h)
    for role in ROLES:
        if role.peak:
            aws_task(w, role)
    aws_scheduled(w)
    aws_people(w)
    attacks = run_attacks(w)
    (out_dir / "vault").mkdir(parents=True, exist_ok=True)
    (out_dir / "aws").mkdir(parents=True, exist_ok=True)
    tagged = write_vault(out_dir / "vault" / "audit.log", w)
    tagged.update(write_aws(out_dir / "aws", w))
    for aid, events in tagged.items():
        events.sort(key=lambda e: (e[1], e[0]))
        attacks[aid].update(
            start=iso(events[0][1]), end=iso(events[-1][1]), event_ids=[e for e, _ in events]
        )
    labels = {
        "seed": seed,
        "days": days,
        "scale": scale,
        "start": iso(cal.start_us),
        "train_until": iso(cal.t(cal.train_days)),
        "end": iso(cal.t(days)),
        "detect_days": cal.detect_days,
        "identities": _identities(cal),
        "attacks": [attacks[a.id] for a in ATTACKS],
        "changes": sorted(_window_changes(cal) + w.changes, key=lambda c: c["start"]),
        "oncall": [
            {
                "identity": ONCALL[week % len(ONCALL)],
                "start": iso(cal.t(7 * week)),
                "end": iso(cal.t(min(days, 7 * week + 7))),
            }
            for week in range((days + 6) // 7)
        ],
        "counts": {"vault_calls": len(w.vault), "aws_records": len(w.aws)},
    }
    (out_dir / "labels.json").write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write vault/, aws/ and labels.json")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    labels = generate(args.out, args.seed, args.days, args.scale)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    counts = labels["counts"]
    print(
        f"{counts['vault_calls']:,} Vault calls + {counts['aws_records']:,} CloudTrail records"
        f" = {counts['vault_calls'] + counts['aws_records']:,} events, {size / 1e6:,.0f} MB,"
        f" {len(labels['attacks'])} attacks, {time.perf_counter() - began:.1f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- cross-identity scenarios (issue 17 item 2): event rows, not log files -------------------
# Small, seeded worlds for detector tests: each identity reads its own secrets from its own
# address with one client, a few times an hour around the clock, so only what a scenario
# adds afterwards stands out.
def _habitual_rows(
    seed: int, start_us: int, days: int, identities: dict[str, tuple[str, str, str]]
) -> list[tuple]:
    """`identities`: name -> (backend, secret, address). Rows as `pipeline.record.EventRow`
    fields, time-ordered."""
    rows = []
    for name, (backend, secret, ip) in sorted(identities.items()):
        rng = random.Random(_stable(f"{seed}/{name}"))
        for hour in range(days * 24):
            for _ in range(rng.randint(1, 3)):
                rows.append(
                    _cross_row(
                        name, backend, start_us + hour * HOUR + rng.randrange(HOUR), secret, ip
                    )
                )
    rows.sort(key=lambda r: r[1])
    return rows


def _cross_row(
    name: str, backend: str, ts: int, secret: str, ip: str, action: str = "read"
) -> tuple:
    eid = f"x-{hashlib.sha256(f'{name}|{ts}|{secret}|{ip}|{action}'.encode()).hexdigest()[:20]}"
    source = "cloudtrail" if backend == "aws" else "vault"
    agent = "aws-sdk-go-v2/1.30" if backend == "aws" else "vault-client-go"
    kind = "role" if backend == "aws" else "service"
    return (
        eid,
        ts,
        source,
        backend,
        name,
        kind,
        secret,
        action,
        action,
        "success",
        ip,
        agent,
        eid,
        None,
        None,
    )


SHARED_NET_IP = "203.0.113.45"  # the attacker's address, shared by four stolen credentials
LONE_IP = "198.51.100.9"  # one identity alone from another outside address
DRIFT_IP = "192.0.2.77"  # two identities from one network, twelve hours apart


def shared_source_scenario(seed: int = 1, days: int = 21) -> dict:
    """Four identities, two Vault services and two AWS roles, each used once from one outside
    address within two hours; a fifth alone from another outside address; two more from a
    third outside network twelve hours apart. Returns `rows` (history then the day judged),
    `train_until` (us) and the labels: `shared` (the four), `lone`, `apart`."""
    start = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * SECOND
    ids = {
        "vault/orders-api": ("vault", "secret/orders/db", "10.244.1.7"),
        "vault/billing-api": ("vault", "secret/billing/db", "10.244.2.7"),
        "arn:aws:iam::111122223333:role/app-exports": ("aws", "prod/exports/s3-key", "10.30.1.7"),
        "arn:aws:iam::111122223333:role/app-ledger": ("aws", "prod/ledger/db", "10.30.2.7"),
        "vault/search-api": ("vault", "secret/search/token", "10.244.3.7"),
        "vault/mail-api": ("vault", "secret/mail/smtp", "10.244.4.7"),
        "arn:aws:iam::111122223333:role/app-media": ("aws", "prod/media/cdn-key", "10.30.3.7"),
    }
    train_until = start + days * DAY
    rows = _habitual_rows(seed, start, days + 1, ids)
    shared = [
        "vault/orders-api",
        "arn:aws:iam::111122223333:role/app-exports",
        "vault/billing-api",
        "arn:aws:iam::111122223333:role/app-ledger",
    ]
    t0 = train_until + 9 * HOUR + 20 * MINUTE
    for k, name in enumerate(shared):  # 0, 35, 70, 105 minutes after the first
        backend, secret, _ = ids[name]
        rows.append(_cross_row(name, backend, t0 + k * 35 * MINUTE, secret, SHARED_NET_IP))
    lone = "vault/search-api"
    rows.append(_cross_row(lone, "vault", t0 + 15 * MINUTE, ids[lone][1], LONE_IP))
    apart = ["vault/mail-api", "arn:aws:iam::111122223333:role/app-media"]
    for k, name in enumerate(apart):
        backend, secret, _ = ids[name]
        rows.append(_cross_row(name, backend, train_until + (2 + 12 * k) * HOUR, secret, DRIFT_IP))
    rows.sort(key=lambda r: r[1])
    return {
        "rows": rows,
        "train_until": train_until,
        "shared": shared,
        "lone": lone,
        "apart": apart,
    }


def mass_rotation_scenario(
    seed: int = 1,
    days: int = 15,
    services: int = 20,
    restarting: int | None = None,
    rotate_minutes: int | None = 0,
    hours_apart: int = 0,
) -> dict:
    """`services` Vault services each reading its own database secret, and a rotator that
    rotates two of those secrets every day at noon, and all of them on Mondays. On the
    judged day (a Tuesday) the rotator rotates all of them `rotate_minutes` after noon (None:
    no rotation) and the first `restarting` services (all by default) restart, two minutes
    after noon plus `hours_apart` hours for each one before them, and re-read their secret
    forty times. Returns `rows`, `train_until` (us), `services`, `restarted` and `rotator`."""
    start = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * SECOND
    names = [f"fleet/svc-{n:02d}" for n in range(services)]
    secret = {n: f"secret/{n.split('/')[1]}/db" for n in names}
    ids = {n: ("vault", secret[n], f"10.244.{10 + k}.7") for k, n in enumerate(names)}
    train_until = start + days * DAY
    rows = _habitual_rows(seed, start, days + 1, ids)
    rotator = "ops/rotator"
    for day in range(days):
        targets = names if day % 7 == 0 else [names[(2 * day + k) % services] for k in (0, 1)]
        for k, n in enumerate(targets):
            at = start + day * DAY + 12 * HOUR + k * SECOND
            rows.append(_cross_row(rotator, "vault", at, secret[n], "10.0.9.9", "write"))
    noon = train_until + 12 * HOUR
    rng = random.Random(_stable(f"{seed}/rotation"))
    restarted = names[: services if restarting is None else restarting]
    for k, n in enumerate(names):
        if rotate_minutes is not None:
            at = noon + rotate_minutes * MINUTE + k * SECOND
            rows.append(_cross_row(rotator, "vault", at, secret[n], "10.0.9.9", "write"))
        if n not in restarted:
            continue
        begin = noon + 2 * MINUTE + k * hours_apart * HOUR
        for _ in range(40):
            rows.append(
                _cross_row(n, "vault", begin + rng.randrange(25 * MINUTE), secret[n], ids[n][2])
            )
    rows.sort(key=lambda r: r[1])
    return {
        "rows": rows,
        "train_until": train_until,
        "services": names,
        "restarted": restarted,
        "rotator": rotator,
    }
