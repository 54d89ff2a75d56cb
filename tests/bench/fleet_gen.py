"""The harder, multi-backend scenario: a fleet of 100+ identities on Vault, CloudTrail and
Kubernetes in one replay, with labelled attacks of every class and labelled benign changes.

    python tests/bench/fleet_gen.py OUT [--seed 1] [--days 75] [--scale 1.0]

writes `OUT/vault/audit.log`, `OUT/aws/YYYY-MM-DD.json` (CloudTrail), `OUT/k8s/audit.jsonl`
(`audit.k8s.io/v1` Events, one a line) and `OUT/labels.json` (see `generate`).

The first scenario (`scenario_gen.py`) is the core: its 39 identities, their traffic and its
eleven attacks of the first eight kinds are built by its own functions (imported, so its
golden output never changes). On top come what real fleets have and it lacks:

- 48 Kubernetes workloads reading their namespace's Secrets through the API server, with
  new pod addresses on every rollout, and an External Secrets operator that syncs them;
- 16 Lambda functions reading Secrets Manager from the region's public ranges, a new
  address on every cold start;
- a Berlin team working 09:00-17:30 local time in Vault and kubectl, across the switch to
  summer time (the default window puts it, 29 March, inside the detection period);
- benign changes, labelled with the events they cause: a mass rotation followed by every
  workload restarting and re-reading, a renamed service, a new team member, new secrets
  read by the person who created them, the daylight-saving shift itself;
- attacks of the new classes: control-plane tampering on each backend, one outside address
  used by several identities across backends within hours, a never-seen identity that lists
  and reads 20+ secrets in a minute (shaped like Stratus Red Team's CloudTrail), a rate held
  at 4x for hours, one denial every ten minutes for hours, and password guessing on Vault
  userpass.

Labels give every attack and every fleet change the event ids the parsers assign, so an
alert can be matched by evidence alone. Randomness is seeded per behaviour, as in the first
scenario; machine traffic is drawn with numpy, and each record is rendered once.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scenario_gen as core  # noqa: E402
from scenario_gen import (  # noqa: E402
    ACCOUNT,
    DAY,
    HOUR,
    MINUTE,
    REGION,
    SECOND,
    Calendar,
    VaultActor,
    VaultWriter,
    World,
    iso,
    poisson_times,
)

TIME_ZONE = "Europe/Berlin"
DEFAULT_DAYS = 75  # 1 Feb - 17 Apr 2026: detection from 18 Mar, summer time from 29 Mar
K8S_AGENT = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"
CT_AGENT = "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 api/secretsmanager#1.32.4"
STRATUS_AGENT = "stratus-red-team_e7a3b1c0-5f2d-4c8e-9a61-3b7d0e2f4a15"
LAMBDA_AGENT = "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.215 lang/python#3.12.3"
OFFICE = ("80.150.6.143", "80.150.6.144")  # the Berlin office's NAT
SHARED_OUTSIDE = "185.220.101.34"
GUESSER = "45.155.205.233"
COLD_USER = "ci-legacy-deployer"

# (call time us, username, verb, resource, namespace, name, address, HTTP code, tag, agent,
#  requestObject or None)
K8sCall = tuple[int, str, str, str, str, "str | None", str, int, "str | None", str, "dict | None"]
# (call time us, principal, eventSource, eventName, request parameters, address, errorCode,
#  tag, user agent); principal is ("role", role path + name, session) or ("user", name, "")
CtCall = tuple[
    int, tuple[str, str, str], str, str, "dict | None", str, "str | None", "str | None", str
]


# --------------------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class Workload:
    """A Kubernetes workload whose service account reads its namespace's Secrets."""

    ns: str
    name: str
    secrets: tuple[str, ...]  # names in `ns`
    peak: float
    curve: str
    redeploy_days: float
    pods: int

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.ns}:{self.name}"

    @property
    def identity(self) -> str:
        return f"{self.ns}/{self.name}"


@dataclass(frozen=True)
class Function:
    """A Lambda function's execution role reading Secrets Manager on cold starts."""

    name: str
    secrets: tuple[str, ...]
    peak: float

    @property
    def role(self) -> str:
        return f"lambda/{self.name}-role"

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{self.role}"


@dataclass(frozen=True)
class Person:
    """A Berlin engineer: Vault through OIDC, kubectl with their e-mail as username."""

    email: str
    team: str  # a fleet namespace
    joins: float | None = None  # fraction of the detection period; None: from the start


NAMESPACES = ("checkout", "catalog", "media", "notify", "risk", "fraud", "billing", "growth")
_APPS = ("api", "worker", "scheduler", "gateway", "consumer", "admin")
_KINDS = ("db", "redis", "config", "api-key", "tls", "webhook")


def _workloads() -> tuple[Workload, ...]:
    rng = random.Random(17)
    out = []
    for ns in NAMESPACES:
        for app in _APPS:
            name = f"{ns}-{app}"
            own = tuple(f"{name}-{k}" for k in rng.sample(_KINDS, rng.randint(2, 4)))
            out.append(
                Workload(
                    ns,
                    name,
                    (*own, "registry-pull"),
                    round(rng.uniform(2.0, 9.0), 1),
                    rng.choice(("web", "flat")),
                    rng.uniform(3.0, 8.0),
                    rng.randint(2, 4),
                )
            )
    return tuple(out)


WORKLOADS = _workloads()
BY_NAME = {w.identity: w for w in WORKLOADS}
RENAMED_FROM, RENAMED_TO = "catalog/catalog-worker", "catalog/catalog-indexer"
OPERATOR = Workload(
    "external-secrets",
    "external-secrets",
    tuple(f"{w.ns}/{s}" for w in WORKLOADS[::3] for s in w.secrets[:1]),
    4.0,
    "flat",
    30.0,
    1,
)
FUNCTIONS = tuple(
    Function(
        name,
        tuple(f"prod/lambda/{name}/{k}" for k in kinds),
        peak,
    )
    for name, kinds, peak in (
        ("image-resize", ("cdn-key",), 6.0),
        ("invoice-pdf", ("smtp", "s3-signing"), 4.0),
        ("webhook-relay", ("hmac", "slack-token"), 8.0),
        ("fraud-score", ("model-api-key",), 5.0),
        ("search-reindex", ("es-creds",), 2.0),
        ("email-bounce", ("ses-creds",), 3.0),
        ("geo-lookup", ("maps-api-key",), 7.0),
        ("price-sync", ("erp-creds", "fx-api-key"), 3.0),
        ("audit-export", ("siem-token",), 1.5),
        ("thumbnailer", ("cdn-key",), 5.0),
        ("sms-sender", ("twilio-token",), 2.5),
        ("report-mailer", ("smtp",), 1.0),
        ("stock-alerts", ("erp-creds",), 2.0),
        ("cart-expiry", ("redis-auth",), 4.0),
        ("coupon-issuer", ("db",), 2.0),
        ("feed-export", ("sftp-key",), 1.0),
    )
)
FN = {f.name: f for f in FUNCTIONS}
PEOPLE = (
    Person("lena.vogel@shop.example", "checkout"),
    Person("anna.schmidt@shop.example", "checkout"),
    Person("tobias.wolf@shop.example", "checkout"),
    Person("mia.becker@shop.example", "catalog"),
    Person("felix.braun@shop.example", "catalog"),
    Person("lukas.hahn@shop.example", "risk"),
    Person("sophie.krause@shop.example", "risk"),
    Person("jonas.keller@shop.example", "checkout", joins=0.35),
)
NEW_MEMBER = PEOPLE[-1]
# Secrets outside the core inventory that attacks reach for.
ALL_AWS_SECRETS = tuple(sorted({*core.AWS_SECRETS, *(s for f in FUNCTIONS for s in f.secrets)}))


def _pod_ips(rng: random.Random, n: int) -> list[str]:
    return [
        f"10.{rng.randrange(96, 100)}.{rng.randrange(0, 256)}.{rng.randrange(2, 255)}"
        for _ in range(n)
    ]


def _lambda_ip(key: int) -> str:
    """A public address in the region's ranges, fixed per (function, cold-start period)."""
    h = hashlib.sha256(str(key).encode()).digest()
    a, b = ((3, 249), (34, 240), (52, 16), (54, 78))[h[0] % 4]
    return f"{a}.{b}.{h[1]}.{1 + h[2] % 254}"


def workload_agent(wl: Workload) -> str:
    """The client a workload's pods identify as (one build per workload)."""
    build = 2 + core._stable(wl.name) % 7  # noqa: SLF001
    return f"{wl.name}/1.{build}.0 (linux/amd64) kubernetes/v1.29.2"


def _vault_path(team: str, secret: str) -> str:
    return f"secret/data/{team}/{secret}"


# --------------------------------------------------------------------------- sinks


@dataclass
class Fleet:
    """Calls of the fleet's backends, beside the core world's, and the change labels."""

    core: World
    k8s: list[K8sCall]
    ct: list[CtCall]
    vault_raw: list[tuple[int, bytes, str, str | None]]  # (time, lines, event id, tag)
    actors: dict[str, VaultActor]
    changes: dict[str, dict]
    deploys: dict[str, tuple[np.ndarray, list[list[str]]]]

    @property
    def cal(self) -> Calendar:
        return self.core.cal

    def kube(
        self,
        ts: int,
        who: str,
        verb: str,
        ns: str,
        name: str | None,
        ip: str,
        code: int = 200,
        tag: str | None = None,
        agent: str = K8S_AGENT,
        resource: str = "secrets",
        body: dict | None = None,
    ) -> None:
        self.k8s.append((ts, who, verb, resource, ns, name, ip, code, tag, agent, body))

    def pod(self, identity: str, ts: int, rng: random.Random) -> str:
        times, pods = self.deploys[identity]
        epoch = int(np.searchsorted(times, ts, side="right")) - 1
        return rng.choice(pods[max(epoch, 0)])


def _rngs(seed: int, *names: object) -> tuple[random.Random, np.random.Generator]:
    return core._rngs(seed, "fleet", *names)  # noqa: SLF001 - the same seeding scheme


def _change(
    f: Fleet,
    cid: str,
    kind: str,
    source: str,
    identities: list[str],
    start: int,
    end: int,
    text: str,
) -> None:
    f.changes[cid] = {
        "id": cid,
        "kind": kind,
        "source": source,
        "identity": identities[0] if len(identities) == 1 else "*",
        "identities": identities,
        "start": iso(start),
        "end": iso(end),
        "description": text,
    }


# --------------------------------------------------------------------------- Kubernetes


def _rollouts(rng: random.Random, cal: Calendar, first: int, mean_days: float) -> list[int]:
    return core._deploy_times(rng, cal, first, mean_days, first > 0)  # noqa: SLF001


def workloads(f: Fleet, rotation_at: int, rename_day: int) -> None:
    """Steady reads of each workload's Secrets, and each pod reading all of them at start; on
    the mass rotation every workload restarts within the hour (change C1)."""
    cal = f.cal
    for wl in WORKLOADS:
        rng, nrng = _rngs(f.core.seed, "k8s", wl.identity)
        first, last = 0, cal.days
        if wl.identity == RENAMED_FROM:
            last = rename_day
        deploys = _rollouts(rng, cal, 0, wl.redeploy_days)
        deploys.append(rotation_at + int(rng.uniform(10, 50) * MINUTE))
        deploys = sorted(d for d in deploys if d < cal.t(last))
        _workload_traffic(f, wl, wl.identity, wl.user, deploys, rng, nrng, first, last, rotation_at)
        if wl.identity == RENAMED_FROM:  # the same workload under its new name (C2)
            new = Workload(
                wl.ns, RENAMED_TO.split("/")[1], wl.secrets, wl.peak, wl.curve, 9, wl.pods
            )
            rng2, nrng2 = _rngs(f.core.seed, "k8s", RENAMED_TO)
            at = cal.t(rename_day, 11.0)
            deploys2 = [at, *(d for d in _rollouts(rng2, cal, rename_day, 9) if d > at)]
            deploys2.append(rotation_at + int(rng2.uniform(10, 50) * MINUTE))
            _workload_traffic(
                f,
                new,
                new.identity,
                new.user,
                sorted(set(deploys2)),
                rng2,
                nrng2,
                rename_day,
                cal.days,
                rotation_at,
                tag_until=at + 3 * DAY,
                tag="C2",
            )
            _change(
                f,
                "C2",
                "renamed_service",
                "k8s",
                [RENAMED_TO],
                at,
                at + 3 * DAY,
                f"{RENAMED_FROM} is redeployed as {RENAMED_TO}: the old service account stops, "
                "the new one reads the same Secrets",
            )


def _workload_traffic(
    f: Fleet,
    wl: Workload,
    identity: str,
    user: str,
    deploys: list[int],
    rng: random.Random,
    nrng: np.random.Generator,
    first_day: int,
    last_day: int,
    rotation_at: int,
    tag_until: int = 0,
    tag: str | None = None,
) -> None:
    cal = f.cal
    lam = cal.rates(wl.peak, wl.curve, first_day)
    lam[last_day * 24 :] = 0.0
    times = poisson_times(nrng, cal, lam)
    times = times[times >= deploys[0]]
    pods = [_pod_ips(rng, wl.pods) for _ in deploys]
    f.deploys[identity] = (np.array(deploys, dtype=np.int64), pods)
    epochs = np.maximum(np.searchsorted(np.array(deploys), times, side="right") - 1, 0)
    pod = nrng.integers(0, wl.pods, times.size)
    which = nrng.integers(0, len(wl.secrets), times.size)
    agent = workload_agent(wl)
    after = rotation_at + 2 * HOUR
    for ts, e, p, s in zip(
        times.tolist(), epochs.tolist(), pod.tolist(), which.tolist(), strict=True
    ):
        t = tag if ts < tag_until else ("C1" if rotation_at <= ts < after else None)
        f.kube(ts, user, "get", wl.ns, wl.secrets[s], pods[e][p], tag=t, agent=agent)
    for e, at in enumerate(deploys):  # every new pod reads all its Secrets at start
        if at >= cal.t(last_day):
            break
        for ip in pods[e]:
            ts = at + int(rng.uniform(5, 90) * SECOND)
            t = tag if ts < tag_until else ("C1" if rotation_at <= ts < after else None)
            for name in wl.secrets:
                ts += int(rng.uniform(0.05, 0.5) * SECOND)
                f.kube(ts, user, "get", wl.ns, name, ip, tag=t, agent=agent)


def operator(f: Fleet, rotation_at: int) -> None:
    """External Secrets syncs a handful of Secrets hourly, updates one a week, and on the
    mass rotation (C1) updates every workload's Secrets within a quarter of an hour."""
    cal, op = f.cal, OPERATOR
    rng, nrng = _rngs(f.core.seed, "operator")
    user, ip, agent = op.user, "10.96.0.41", "external-secrets/v0.9.13"
    for hour in range(cal.days * 24):
        ts = cal.start_us + hour * HOUR + int(rng.uniform(0, 120) * SECOND)
        for ref in rng.sample(op.secrets, 3):
            ns, name = ref.split("/")
            f.kube(ts, user, "get", ns, name, ip, agent=agent)
            ts += int(rng.uniform(0.1, 2) * SECOND)
    for day in range(3, cal.days, 7):
        ns, name = rng.choice(op.secrets).split("/")
        f.kube(cal.t(day, 3.0 + rng.random()), user, "update", ns, name, ip, agent=agent)
    ts = rotation_at
    for wl in WORKLOADS:
        for name in wl.secrets[:-1]:
            ts += int(rng.uniform(1, 12) * SECOND)
            f.kube(ts, user, "update", wl.ns, name, ip, tag="C1", agent=agent)
    _change(
        f,
        "C1",
        "mass_rotation",
        "k8s",
        ["*"],
        rotation_at,
        rotation_at + 2 * HOUR,
        f"external-secrets rotates every workload's Secrets; all {len(WORKLOADS)} workloads "
        "restart within the hour and re-read them from new pods",
    )


# --------------------------------------------------------------------------- Lambda


def functions(f: Fleet) -> None:
    """Cold-start reads: a new public address whenever the function scales out."""
    cal = f.cal
    for fn in FUNCTIONS:
        rng, nrng = _rngs(f.core.seed, "lambda", fn.name)
        times = poisson_times(nrng, cal, cal.rates(fn.peak, "web"))
        period = times // (rng.randint(15, 45) * MINUTE)
        salt = core._stable(fn.name)  # noqa: SLF001
        which = nrng.integers(0, len(fn.secrets), times.size)
        principal = ("role", fn.role, fn.name)
        for ts, p, s in zip(times.tolist(), period.tolist(), which.tolist(), strict=True):
            f.ct.append(
                (
                    ts,
                    principal,
                    "secretsmanager.amazonaws.com",
                    "GetSecretValue",
                    {"secretId": fn.secrets[s]},
                    _lambda_ip(salt * 1_000_003 + p),
                    None,
                    None,
                    LAMBDA_AGENT,
                )
            )


# --------------------------------------------------------------------------- people


def _local(cal: Calendar, day: int, hour: float) -> int:
    """Event time (us, UTC) of `hour` local Berlin time on scenario day `day`."""
    base = datetime.fromtimestamp(cal.t(day) // SECOND, UTC).date()
    local = datetime(base.year, base.month, base.day, tzinfo=ZoneInfo(TIME_ZONE))
    local += timedelta(hours=hour)
    return int(local.timestamp() * SECOND)


def dst_switch(cal: Calendar) -> int | None:
    """Event time of the first UTC offset change in the scenario, if any."""
    zone = ZoneInfo(TIME_ZONE)
    before = None
    for day in range(cal.days + 1):
        offset = datetime.fromtimestamp(cal.t(day) // SECOND, zone).utcoffset()
        if before is not None and offset != before:
            return cal.t(day - 1, 1.0)  # 01:00 UTC, the hour both switches happen
        before = offset
    return None


def people(f: Fleet) -> None:
    """Working days 09:00-17:30 Berlin time: Vault reads of the team's secrets and a few
    kubectl gets; the new member (C3) from the day they join."""
    cal = f.cal
    switch = dst_switch(cal)
    for p in PEOPLE:
        rng, nrng = _rngs(f.core.seed, "person", p.email)
        f.actors[p.email] = VaultActor(
            p.email,
            f"oidc-{core._stable(p.email)}",
            {"email": p.email, "role": "employee"},  # noqa: SLF001
            ("default", f"team-{p.team}", "human"),
            core._uuid(rng),
            "vault/1.15.2",
            43200,  # noqa: SLF001
        )
        team = [wl for wl in WORKLOADS if wl.ns == p.team]
        secrets = [(wl.name, s) for wl in team for s in wl.secrets[:-1]]
        favourites = rng.sample(secrets, 5)
        first = cal.detect_day(p.joins) if p.joins is not None else 0
        first = cal.weekday_near(first) if p.joins is not None else 0
        joined = cal.t(first, 8.0)
        for day in range(first, cal.days):
            if not cal.workday(day) or rng.random() < 0.06:
                continue
            start = _local(cal, day, 9.0 + rng.gauss(0, 0.4))
            end = _local(cal, day, 17.5 + rng.gauss(0, 0.5))
            ip, token = rng.choice(OFFICE), f"b{day}"
            tag = None
            if p is NEW_MEMBER and start < joined + 5 * DAY:
                tag = "C3"
            elif switch is not None and switch <= start < switch + 7 * DAY:
                tag = "C5"
            f.core.v(start, p.email, "read", "auth/oidc/oidc/callback", ip, token, tag=tag)
            for _ in range(int(nrng.poisson(5))):
                ts = start + int(rng.uniform(0.05, 1.0) * (end - start))
                svc, name = rng.choice(favourites) if rng.random() < 0.7 else rng.choice(secrets)
                f.core.v(
                    ts, p.email, "read", _vault_path(p.team, f"{svc}/{name}"), ip, token, tag=tag
                )
            for _ in range(int(nrng.poisson(1.2))):
                ts = start + int(rng.uniform(0.05, 1.0) * (end - start))
                svc, name = rng.choice(secrets)
                f.kube(ts, p.email, "get", p.team, name, ip, tag=tag)
        if p is NEW_MEMBER:
            _change(
                f,
                "C3",
                "new_team_member",
                "*",
                [p.email],
                joined,
                joined + 5 * DAY,
                f"{p.email} joins the {p.team} team and reads its secrets in Vault and kubectl",
            )
    if switch is not None:
        _change(
            f,
            "C5",
            "dst_change",
            "*",
            [p.email for p in PEOPLE],
            switch,
            switch + 7 * DAY,
            "Berlin switches to summer time: the team's working day starts an hour earlier in UTC",
        )


def new_secrets(f: Fleet) -> None:
    """A person creates secrets and reads them back over two days (C4), in Vault and k8s."""
    cal = f.cal
    rng, _ = _rngs(f.core.seed, "new-secrets")
    p = PEOPLE[3]
    day = cal.weekday_near(cal.detect_day(0.45))
    ts = _local(cal, day, 11.0)
    path = _vault_path(p.team, "catalog-search-v2/opensearch-creds")
    f.core.v(ts, p.email, "create", path, OFFICE[0], f"new{day}", tag="C4")
    f.kube(
        ts + 5 * MINUTE, p.email, "create", p.team, "catalog-search-v2-creds", OFFICE[0], 201, "C4"
    )
    after = next((d for d in range(day + 1, cal.days) if cal.workday(d)), day)
    for k in range(6):  # three reads a working day, the day of creation and the next
        at = _local(cal, (day, after)[k // 3], 11.5 + 2 * (k % 3) + rng.random())
        f.core.v(at, p.email, "read", path, OFFICE[0], f"new{day}.{k}", tag="C4")
        f.kube(at + MINUTE, p.email, "get", p.team, "catalog-search-v2-creds", OFFICE[1], tag="C4")
    _change(
        f,
        "C4",
        "new_secret",
        "*",
        [p.email],
        ts,
        ts + 3 * DAY,
        f"{p.email} creates a Vault secret and a Kubernetes Secret and reads them back",
    )


def denied_norm(f: Fleet) -> None:
    """notify-worker is denied about once a day (a leftover reference): the norm F7 breaks."""
    cal = f.cal
    rng, nrng = _rngs(f.core.seed, "denied-norm")
    wl = BY_NAME["notify/notify-worker"]
    times = poisson_times(nrng, cal, np.full(cal.days * 24, 1 / 24))
    for ts in times.tolist():
        ip = f.pod(wl.identity, ts, rng)
        f.kube(ts, wl.user, "get", wl.ns, "sms-gateway-legacy", ip, 403, agent=workload_agent(wl))


# --------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class FleetAttack:
    id: str
    kind: str
    source: str
    identity: str
    at: float
    description: str


FLEET_ATTACKS = (
    FleetAttack(
        "F1",
        "control_plane",
        "vault",
        "orders/orders-api",
        0.15,
        "orders/orders-api disables the Vault audit device and writes an ACL policy",
    ),
    FleetAttack(
        "F2",
        "control_plane",
        "aws",
        FN["webhook-relay"].arn,
        0.25,
        "webhook-relay's role stops CloudTrail logging and opens a secret's policy",
    ),
    FleetAttack(
        "F3",
        "control_plane",
        "k8s",
        "growth/growth-consumer",
        0.55,
        "growth-consumer writes a Role granting get/list on secrets and binds it",
    ),
    FleetAttack(
        "F4",
        "shared_source",
        "*",
        PEOPLE[1].email,
        0.7,
        f"{SHARED_OUTSIDE} used within three hours by a Vault person, a Lambda role and "
        "a Kubernetes service account",
    ),
    FleetAttack(
        "F5",
        "cold_enumeration",
        "aws",
        f"arn:aws:iam::{ACCOUNT}:user/{COLD_USER}",
        0.8,
        f"never-seen IAM user {COLD_USER} lists secrets and reads 22 in 40 s",
    ),
    FleetAttack(
        "F6",
        "sustained_rate",
        "k8s",
        "catalog/catalog-api",
        0.3,
        "catalog-api, the busiest workload, reads its Secrets at 4x its rate for five hours",
    ),
    FleetAttack(
        "F7",
        "sustained_denied",
        "k8s",
        "notify/notify-worker",
        0.4,
        "notify-worker is denied once every ten minutes for six hours",
    ),
    FleetAttack(
        "F8",
        "password_guessing",
        "vault",
        "bob",
        0.5,
        f"40 failed userpass logins for bob and erin from {GUESSER} in half an hour",
    ),
)


def _f1(f: Fleet, rng: random.Random, day: int) -> None:
    ts = f.cal.t(day, 14.0 + rng.random())
    for k, (op, path) in enumerate(
        (("delete", "sys/audit/file"), ("update", "sys/policies/acl/orders-api"))
    ):
        ip, token = f.core.pod_at("orders/orders-api", ts + k * MINUTE, rng)
        f.core.v(ts + k * MINUTE, "orders/orders-api", op, path, ip, token, tag="F1")


def _f2(f: Fleet, rng: random.Random, day: int) -> None:
    fn = FN["webhook-relay"]
    ts = f.cal.t(day, 15.0 + rng.random())
    ip, principal = _lambda_ip(rng.getrandbits(32)), ("role", fn.role, fn.name)
    trail = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/org-trail"
    calls = (
        ("cloudtrail.amazonaws.com", "StopLogging", {"name": trail}),
        (
            "secretsmanager.amazonaws.com",
            "PutResourcePolicy",
            {
                "secretId": fn.secrets[0],
                "resourcePolicy": '{"Version":"2012-10-17"}',
                "blockPublicPolicy": False,
            },
        ),
    )
    for k, (src, event, params) in enumerate(calls):
        f.ct.append((ts + k * 40 * SECOND, principal, src, event, params, ip, None, "F2", CT_AGENT))


def _f3(f: Fleet, rng: random.Random, day: int) -> None:
    wl = BY_NAME["growth/growth-consumer"]
    ts = f.cal.t(day, 13.0 + rng.random())
    ip = f.pod(wl.identity, ts, rng)
    role = {
        "kind": "Role",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "secret-reader", "namespace": "growth"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
    }
    binding = {
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "secret-reader-default", "namespace": "growth"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "secret-reader",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "growth"}],
    }
    f.kube(
        ts,
        wl.user,
        "create",
        "growth",
        "secret-reader",
        ip,
        201,
        "F3",
        "kubectl/v1.29.2",
        "roles",
        role,
    )
    f.kube(
        ts + 20 * SECOND,
        wl.user,
        "create",
        "growth",
        "secret-reader-default",
        ip,
        201,
        "F3",
        "kubectl/v1.29.2",
        "rolebindings",
        binding,
    )


def _f4(f: Fleet, rng: random.Random, day: int) -> None:
    ts = f.cal.t(day, 19.0 + rng.random())
    person = PEOPLE[1]
    f.core.v(ts, person.email, "read", "auth/oidc/oidc/callback", SHARED_OUTSIDE, "x", tag="F4")
    own = BY_NAME["checkout/checkout-api"]
    for k, name in enumerate(own.secrets[:2]):
        f.core.v(
            ts + (k + 1) * MINUTE,
            person.email,
            "read",
            _vault_path(person.team, f"{own.name}/{name}"),
            SHARED_OUTSIDE,
            "x",
            tag="F4",
            agent="curl/8.5.0",
        )
    fn = FN["price-sync"]
    at = ts + int(rng.uniform(40, 80) * MINUTE)
    for k, secret in enumerate(fn.secrets):
        f.ct.append(
            (
                at + k * 30 * SECOND,
                ("role", fn.role, fn.name),
                "secretsmanager.amazonaws.com",
                "GetSecretValue",
                {"secretId": secret},
                SHARED_OUTSIDE,
                None,
                "F4",
                core.CLI_AGENT,
            )
        )
    wl = BY_NAME["risk/risk-api"]
    at += int(rng.uniform(40, 80) * MINUTE)
    for k, name in enumerate(wl.secrets[:2]):
        f.kube(
            at + k * 20 * SECOND,
            wl.user,
            "get",
            wl.ns,
            name,
            SHARED_OUTSIDE,
            tag="F4",
            agent="kubectl/v1.29.2",
        )


def _f5(f: Fleet, rng: random.Random, day: int) -> None:
    ts = f.cal.t(day, 16.0 + rng.random())
    principal, ip = ("user", COLD_USER, ""), "34.250.17.91"
    f.ct.append(
        (
            ts,
            principal,
            "secretsmanager.amazonaws.com",
            "ListSecrets",
            {"maxResults": 100},
            ip,
            None,
            "F5",
            STRATUS_AGENT,
        )
    )
    for s in rng.sample(ALL_AWS_SECRETS, 22):
        ts += int(rng.uniform(0.5, 2.5) * SECOND)
        f.ct.append(
            (
                ts,
                principal,
                "secretsmanager.amazonaws.com",
                "GetSecretValue",
                {"secretId": s},
                ip,
                None,
                "F5",
                STRATUS_AGENT,
            )
        )


def _f6(f: Fleet, rng: random.Random, day: int) -> None:
    wl = BY_NAME["catalog/catalog-api"]
    agent = workload_agent(wl)
    for hour in range(10, 15):
        usual = f.cal.rates(wl.peak, wl.curve)[day * 24 + hour]
        for _ in range(max(2, round(3 * usual))):  # 3x on top of the usual: 4x in all
            ts = f.cal.t(day, hour) + rng.randrange(HOUR)
            ip = f.pod(wl.identity, ts, rng)
            f.kube(ts, wl.user, "get", wl.ns, rng.choice(wl.secrets), ip, tag="F6", agent=agent)


def _f7(f: Fleet, rng: random.Random, day: int) -> None:
    wl = BY_NAME["notify/notify-worker"]
    ts = f.cal.t(day, 9.0 + rng.random())
    others = [f"{w.name}-{k}" for w in WORKLOADS if w.ns == "billing" for k in ("db", "config")]
    for _ in range(36):
        ts += int(rng.uniform(8, 12) * MINUTE)
        f.kube(
            ts,
            wl.user,
            "get",
            "billing",
            rng.choice(others),
            f.pod(wl.identity, ts, rng),
            403,
            "F7",
            workload_agent(wl),
        )


def _f8(f: Fleet, rng: random.Random, day: int) -> None:
    ts = f.cal.t(day, 2.0 + rng.random())
    for k in range(40):
        ts += int(rng.uniform(20, 70) * SECOND)
        user = "bob" if k % 3 else "erin"
        f.vault_raw.append(_failed_login(f, rng, ts, user, "F8"))


_ATTACK_RUN = {
    "F1": _f1,
    "F2": _f2,
    "F3": _f3,
    "F4": _f4,
    "F5": _f5,
    "F6": _f6,
    "F7": _f7,
    "F8": _f8,
}


def run_fleet_attacks(f: Fleet) -> dict[str, dict]:
    out = {}
    for attack in FLEET_ATTACKS:
        rng, _ = _rngs(f.core.seed, "attack", attack.id)
        day = f.cal.weekday_near(f.cal.detect_day(attack.at))
        _ATTACK_RUN[attack.id](f, rng, day)
        out[attack.id] = {
            "id": attack.id,
            "kind": attack.kind,
            "source": attack.source,
            "identity": attack.identity,
            "description": attack.description,
        }
    return out


# --------------------------------------------------------------------------- writers


def _failed_login(
    f: Fleet, rng: random.Random, ts: int, user: str, tag: str | None
) -> tuple[int, bytes, str, str | None]:
    """A userpass login with a wrong password, as Vault writes it: no auth, an error."""
    rid = core._uuid(rng)  # noqa: SLF001
    mount = core._mount("auth/userpass/")  # noqa: SLF001
    request = {
        "id": rid,
        "operation": "update",
        "mount_point": mount[0],
        "mount_type": mount[1],
        "mount_accessor": mount[2],
        "mount_class": mount[3],
        "namespace": {"id": "root"},
        "path": f"auth/userpass/login/{user}",
        "data": {"password": core._hmac(rng)},  # noqa: SLF001
        "remote_address": GUESSER,
        "remote_port": rng.randint(30000, 65000),
        "headers": {"user-agent": ["python-requests/2.31.0"]},
    }
    stamp = core._vault_time(ts, rng)  # noqa: SLF001
    entry = {
        "time": stamp,
        "type": "request",
        "auth": {"token_type": "default"},
        "request": request,
        "error": "invalid credentials",
    }
    response = {
        "time": core._vault_time(ts + 900, rng),
        "type": "response",  # noqa: SLF001
        "auth": {"token_type": "default"},
        "request": request,
        "response": {"mount_point": mount[0], "mount_type": mount[1], "mount_accessor": mount[2]},
        "error": "invalid credentials",
    }
    return ts, orjson.dumps(entry) + b"\n" + orjson.dumps(response) + b"\n", rid, tag


def write_vault(path: Path, f: Fleet) -> dict[str, list[tuple[str, int]]]:
    """The core's calls, the fleet's people and raw entries, in time order."""
    writer = VaultWriter(f.core.seed, {**core.vault_actors(f.core.seed), **f.actors})
    tagged: dict[str, list[tuple[str, int]]] = {}
    f.core.vault.sort(key=lambda c: c[0])
    raw = sorted(f.vault_raw, key=lambda r: r[0])
    k = 0
    with path.open("wb") as out:
        buf: list[bytes] = []
        for call in f.core.vault:
            while k < len(raw) and raw[k][0] <= call[0]:
                ts, data, rid, tag = raw[k]
                buf.append(data)
                if tag:
                    tagged.setdefault(tag, []).append((rid, ts))
                k += 1
            data, rid, done = writer.lines(call)
            buf.append(data)
            if call[7]:
                tagged.setdefault(call[7], []).append((rid, done))
            if len(buf) >= 20_000:
                out.write(b"".join(buf))
                buf.clear()
        for ts, data, rid, tag in raw[k:]:
            buf.append(data)
            if tag:
                tagged.setdefault(tag, []).append((rid, ts))
        out.write(b"".join(buf))
    return tagged


_ROLE_IDS: dict[str, str] = {}


def _ct_record(call: CtCall, rng: random.Random) -> tuple[dict, str, int]:
    ts, (kind, name, session), source, event, params, ip, error, _, agent = call
    ts -= ts % SECOND
    eid = core._uuid(rng)  # noqa: SLF001
    created = ts - ts % HOUR
    key = "ASIA" + hashlib.sha256(f"{name}/{session}/{created}".encode()).hexdigest()[:16].upper()
    if kind == "user":
        identity: dict = {
            "type": "IAMUser",
            "principalId": "AIDA" + hashlib.sha256(name.encode()).hexdigest()[:17].upper(),
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
            "accountId": ACCOUNT,
            "accessKeyId": "AKIA" + hashlib.sha256(name.encode()).hexdigest()[:16].upper(),
            "userName": name,
        }
    else:
        rid = _ROLE_IDS.setdefault(
            name, "AROA" + hashlib.sha256(name.encode()).hexdigest()[:17].upper()
        )
        short = name.rsplit("/", 1)[-1]
        identity = {
            "type": "AssumedRole",
            "principalId": f"{rid}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{short}/{session}",
            "accountId": ACCOUNT,
            "accessKeyId": key,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": rid,
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
                    "accountId": ACCOUNT,
                    "userName": short,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": iso(created), "mfaAuthenticated": "false"},
            },
        }
    rec: dict = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": iso(ts),
        "eventSource": source,
        "eventName": event,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": agent,
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = f"User: {identity['arn']} is not authorized to perform: {event}"
    rec.update(
        {
            "requestParameters": params,
            "responseElements": None,
            "requestID": core._uuid(rng),  # noqa: SLF001
            "eventID": eid,
            "readOnly": event in ("GetSecretValue", "ListSecrets", "DescribeSecret"),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
        }
    )
    return rec, eid, ts


def write_aws(folder: Path, f: Fleet) -> dict[str, list[tuple[str, int]]]:
    """One CloudTrail file per day: the core's records and the fleet's, in time order."""
    writer = core.AwsWriter(f.core.seed)
    rng, _ = _rngs(f.core.seed, "ct-writer")
    tagged: dict[str, list[tuple[str, int]]] = {}
    by_day: dict[int, list[tuple[int, dict]]] = {}
    f.core.aws.sort(key=lambda c: c[0])
    f.ct.sort(key=lambda c: c[0])
    rendered = [(*writer.record(c), c[7]) for c in f.core.aws]
    rendered += [(*_ct_record(c, rng), c[7]) for c in f.ct]
    for rec, eid, ts, tag in rendered:
        by_day.setdefault((ts - f.cal.start_us) // DAY, []).append((ts, rec))
        if tag:
            tagged.setdefault(tag, []).append((eid, ts))
    for day, records in sorted(by_day.items()):
        records.sort(key=lambda r: r[0])
        name = time.strftime("%Y-%m-%d", time.gmtime(f.cal.t(day) // SECOND))
        (folder / f"{name}.json").write_bytes(orjson.dumps({"Records": [r for _, r in records]}))
    return tagged


def write_k8s(path: Path, f: Fleet) -> dict[str, list[tuple[str, int]]]:
    """Audit Events at level Metadata (RequestResponse for RBAC writes), ResponseComplete."""
    rng, _ = _rngs(f.core.seed, "k8s-writer")
    tagged: dict[str, list[tuple[str, int]]] = {}
    f.k8s.sort(key=lambda c: c[0])
    uids: dict[str, str] = {}
    with path.open("wb") as out:
        buf: list[bytes] = []
        for ts, who, verb, resource, ns, name, ip, code, tag, agent, body in f.k8s:
            aid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            group = "rbac.authorization.k8s.io" if resource != "secrets" else ""
            base = f"/apis/{group}/v1" if group else "/api/v1"
            uri = f"{base}/namespaces/{ns}/{resource}" + (
                f"/{name}" if verb != "create" and name else ""
            )
            if who.startswith("system:serviceaccount:"):
                groups = [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{who.split(':')[2]}",
                    "system:authenticated",
                ]
            else:
                groups = ["oidc:engineering", "system:authenticated"]
            ref: dict = {"resource": resource, "namespace": ns, "apiVersion": "v1"}
            if group:
                ref["apiGroup"] = group
            if name:
                ref["name"] = name
            event: dict = {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": "RequestResponse" if body else "Metadata",
                "auditID": aid,
                "stage": "ResponseComplete",
                "requestURI": uri,
                "verb": verb,
                "user": {
                    "username": who,
                    "uid": uids.setdefault(who, str(uuid.UUID(int=core._stable(who), version=4))),  # noqa: SLF001
                    "groups": groups,
                },
                "sourceIPs": [ip],
                "userAgent": agent,
                "objectRef": ref,
                "responseStatus": {"metadata": {}, "code": code},
                "requestReceivedTimestamp": iso(ts),
                "stageTimestamp": iso(ts + 800),
                "annotations": {
                    "authorization.k8s.io/decision": "forbid" if code == 403 else "allow",
                    "authorization.k8s.io/reason": "",
                },
            }
            if code == 403:
                event["responseStatus"].update(
                    status="Failure",
                    reason="Forbidden",
                    message=f'secrets "{name}" is forbidden: User "{who}" cannot get resource '
                    f'"secrets" in API group "" in the namespace "{ns}"',
                )
            if body:
                event["requestObject"] = body
            buf.append(orjson.dumps(event) + b"\n")
            if tag:
                tagged.setdefault(tag, []).append((aid, ts + 800))
            if len(buf) >= 20_000:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))
    return tagged


# --------------------------------------------------------------------------- entry points


def _identities() -> list[dict]:
    out = [
        {
            "identity": wl.identity,
            "source": "k8s",
            "identity_kind": "service",
            "role": "kubernetes service account",
            "team": wl.ns,
        }
        for wl in (*WORKLOADS, OPERATOR)
    ]
    out.append(
        {
            "identity": RENAMED_TO,
            "source": "k8s",
            "identity_kind": "service",
            "role": "kubernetes service account (renamed)",
            "team": "catalog",
        }
    )
    out += [
        {
            "identity": fn.arn,
            "source": "aws",
            "identity_kind": "service",
            "role": "iam role (lambda)",
            "team": "platform",
        }
        for fn in FUNCTIONS
    ]
    out += [
        {
            "identity": p.email,
            "source": "*",
            "identity_kind": "human",
            "role": "oidc person (Europe/Berlin)",
            "team": p.team,
        }
        for p in PEOPLE
    ]
    out.append(
        {
            "identity": f"arn:aws:iam::{ACCOUNT}:user/{COLD_USER}",
            "source": "aws",
            "identity_kind": "human",
            "role": "iam user (attack only)",
            "team": "-",
        }
    )
    return out


def generate(out_dir: Path, seed: int = 1, days: int = DEFAULT_DAYS, scale: float = 1.0) -> dict:
    """Write the scenario into `out_dir` and return its labels (also in `labels.json`).

    As `scenario_gen.generate`'s, plus: `time_zone` (the people's), `dst_switch` (event time
    of the offset change, or null), `inputs` (the three paths to replay), and for fleet
    changes `id`, `identities` and `event_ids` (the events the change causes; core changes
    have none and are matched by identity and time).
    """
    if days < 9:
        raise ValueError(f"days must be at least 9 (training plus detection); got {days}")
    cal = Calendar(days, scale)
    w = World(cal, seed)
    for svc in (*core.SERVICES, core.NEW_SERVICE):
        core.k8s_service(w, svc)
    for job in core.BATCHES:
        core.batch_job(w, job)
    core.ci(w)
    core.rotator(w)
    for h in core.HUMANS:
        core.human(w, h)
    for role in core.ROLES:
        if role.peak:
            core.aws_task(w, role)
    core.aws_scheduled(w)
    core.aws_people(w)
    attacks = core.run_attacks(w)
    f = Fleet(w, [], [], [], {}, {}, {})
    rotation_at = cal.t(cal.weekday_near(cal.detect_day(0.6)), 10.0)
    rename_day = cal.weekday_near(cal.detect_day(0.5))
    workloads(f, rotation_at, rename_day)
    operator(f, rotation_at)
    functions(f)
    people(f)
    new_secrets(f)
    denied_norm(f)
    attacks.update(run_fleet_attacks(f))
    for sub in ("vault", "aws", "k8s"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    tagged = write_vault(out_dir / "vault" / "audit.log", f)
    for tag, events in write_aws(out_dir / "aws", f).items():
        tagged.setdefault(tag, []).extend(events)
    for tag, events in write_k8s(out_dir / "k8s" / "audit.jsonl", f).items():
        tagged.setdefault(tag, []).extend(events)
    for tag, events in tagged.items():
        events.sort(key=lambda e: (e[1], e[0]))
        target = attacks.get(tag) or f.changes[tag]
        target.update(
            start=iso(events[0][1]), end=iso(events[-1][1]), event_ids=[e for e, _ in events]
        )
    switch = dst_switch(cal)
    labels = {
        "seed": seed,
        "days": days,
        "scale": scale,
        "start": iso(cal.start_us),
        "train_until": iso(cal.t(cal.train_days)),
        "end": iso(cal.t(days)),
        "detect_days": cal.detect_days,
        "time_zone": TIME_ZONE,
        "dst_switch": iso(switch) if switch is not None else None,
        "inputs": ["vault/audit.log", "aws", "k8s/audit.jsonl"],
        "identities": core._identities(cal) + _identities(),  # noqa: SLF001
        "attacks": [a for a in attacks.values() if "event_ids" in a],
        "changes": sorted(
            core._window_changes(cal)
            + w.changes  # noqa: SLF001
            + [c for c in f.changes.values() if "event_ids" in c],
            key=lambda c: c["start"],
        ),
        "oncall": [
            {
                "identity": core.ONCALL[week % len(core.ONCALL)],
                "start": iso(cal.t(7 * week)),
                "end": iso(cal.t(min(days, 7 * week + 7))),
            }
            for week in range((days + 6) // 7)
        ],
        "counts": {
            "vault_calls": len(w.vault) + len(f.vault_raw),
            "aws_records": len(w.aws) + len(f.ct),
            "k8s_events": len(f.k8s),
        },
    }
    (out_dir / "labels.json").write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write vault/, aws/, k8s/, labels.json")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    labels = generate(args.out, args.seed, args.days, args.scale)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    c = labels["counts"]
    print(
        f"{c['vault_calls']:,} Vault + {c['aws_records']:,} CloudTrail + {c['k8s_events']:,} "
        f"Kubernetes = {sum(c.values()):,} events, {len(labels['identities'])} identities, "
        f"{size / 1e6:,.0f} MB, {len(labels['attacks'])} attacks, "
        f"{time.perf_counter() - began:.1f} s -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
