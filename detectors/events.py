"""The events frame detectors work on: the store's columns plus the integer time keys and
grouping keys every detector needs, computed once per batch with vectorized pandas.

Time keys are in the configured time zone (UTC by default), so "03:00 on Sunday" in an
explanation is the hour the people reading it live in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
import pandas as pd

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
WEEK_US = 7 * DAY_US
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Actions that touch a secret (auth housekeeping, control-plane changes and `other` do not).
ACCESS_ACTIONS = ("read", "list", "write", "delete", "rotate")
# The notes parsers give control-plane events (pipeline.record spells the same text; a test
# holds them equal): a change to who can read secrets, or tampering with audit itself.
CONTROL_NOTE = "control-plane: "
TAMPER_NOTE = "audit tampering: "


@dataclass(frozen=True)
class Events:
    """A batch of events as numpy columns: text columns as object arrays, time keys and
    integer codes (for grouping) as int64, flags as bool. Slicing gives views, so the
    replay loop cuts batches out of one prepared stream for free."""

    event_id: np.ndarray
    identity: np.ndarray
    identity_kind: np.ndarray
    secret: np.ndarray
    action: np.ndarray
    outcome: np.ndarray
    source_ip: np.ndarray
    net: np.ndarray
    client: np.ndarray  # user-agent family, e.g. `aws-cli`, `vault-agent`
    area: np.ndarray
    ts_us: np.ndarray
    uhour: np.ndarray  # UTC hour index
    hour: np.ndarray  # local hour index
    day: np.ndarray  # local day index
    week: np.ndarray  # local week index (weeks start on Monday)
    how: np.ndarray  # local hour of the week, Monday 00:00 = 0
    win: np.ndarray  # burst window index
    icode: np.ndarray  # identity code (within this stream)
    scode: np.ndarray  # secret code
    ncode: np.ndarray  # network code
    ccode: np.ndarray  # client code
    access: np.ndarray  # touches a secret
    denied: np.ndarray
    actor: np.ndarray  # the person behind a shared identity (an SSO session), "" if none
    operation: np.ndarray  # the raw or control-plane operation (`policy-write`, `StopLogging`)
    note: np.ndarray
    control: np.ndarray  # int8: 0 none, 1 a control-plane change, 2 tampering with audit

    def __len__(self) -> int:
        return len(self.ts_us)

    def slice(self, lo: int, hi: int) -> Events:
        return Events(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})

    def take(self, index: np.ndarray) -> Events:
        """The events at `index` (positions or a boolean mask)."""
        return Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def prepare(events: pd.DataFrame, tz: str = "UTC", window_minutes: int = 10) -> Events:
    """Turn a store frame (time-ordered) into `Events`: time keys in the configured zone,
    the network and folder of each event, and integer codes for grouping.

    >>> f = pd.DataFrame({"ts": pd.to_datetime(["2026-05-03T03:10:00Z"]), "secret": ["a/b/c"],
    ...     "source_ip": ["10.1.2.3"], "identity": ["x"], "action": ["read"],
    ...     "outcome": ["success"], "event_id": ["e"]})
    >>> e = prepare(f)
    >>> int(e.how[0]), DAYS[int(e.how[0]) // 24], e.net[0], e.area[0]
    (147, 'Sunday', '10.1.2.0/24', 'a/b')
    """

    def text(name: str) -> np.ndarray:
        if name not in events:
            return np.full(len(events), "", dtype=object)
        column: np.ndarray = events[name].fillna("").to_numpy(dtype=object)
        return column

    ts = events["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True)
    ts_us = ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy()
    local = ts_us + _offsets_us(ts, tz)
    monday_based = local + 3 * DAY_US  # 1970-01-01 was a Thursday
    secret, source_ip, action = text("secret"), text("source_ip"), text("action")
    net = _map(source_ip, network)
    client = _map(text("user_agent"), client_family)
    return Events(
        event_id=text("event_id"),
        identity=(identity := text("identity")),
        identity_kind=text("identity_kind"),
        secret=secret,
        action=action,
        outcome=(outcome := text("outcome")),
        source_ip=source_ip,
        net=net,
        client=client,
        area=_map(secret, area),
        ts_us=ts_us,
        uhour=ts_us // HOUR_US,
        hour=local // HOUR_US,
        day=local // DAY_US,
        week=monday_based // WEEK_US,
        how=(monday_based % WEEK_US) // HOUR_US,
        win=ts_us // (window_minutes * 60_000_000),
        icode=pd.factorize(identity)[0].astype(np.int64),
        scode=pd.factorize(secret)[0].astype(np.int64),
        ncode=pd.factorize(net)[0].astype(np.int64),
        ccode=pd.factorize(client)[0].astype(np.int64),
        access=np.isin(action, ACCESS_ACTIONS) & (secret != ""),
        denied=outcome == "denied",
        actor=text("actor"),
        operation=text("operation"),
        note=(note := text("note")),
        control=np.maximum((action == "control").astype(np.int8), _levels(note)),
    )


def group(keys: np.ndarray, positions: np.ndarray) -> list[np.ndarray]:
    """Split `positions` into runs of equal `keys[positions]`, in key order (numpy only:
    pandas groupby costs more than the detectors themselves on small batches)."""
    if not len(positions):
        return []
    k = keys[positions]
    order = np.argsort(k, kind="stable")
    ordered = positions[order]
    cuts = np.flatnonzero(np.diff(k[order])) + 1
    return np.split(ordered, cuts)


def _offsets_us(ts: pd.Series, tz: str) -> np.ndarray:
    if tz in ("UTC", "Etc/UTC"):
        return np.zeros(len(ts), dtype=np.int64)
    local = ts.dt.tz_convert(tz)
    offsets: np.ndarray = (
        (local.dt.tz_localize(None) - ts.dt.tz_localize(None))
        .to_numpy()
        .astype("timedelta64[us]")
        .astype(np.int64)
    )
    return offsets


def _map(values: np.ndarray, fn: Callable[[str], str]) -> np.ndarray:
    """Apply a cached scalar function through the distinct values only."""
    if not len(values):
        return values.copy()
    codes, uniques = pd.factorize(values)
    mapped: np.ndarray = np.array([fn(v) for v in uniques], dtype=object)[codes]
    return mapped


@lru_cache(maxsize=65536)
def network(ip: str) -> str:
    """The network an address belongs to for "new source" purposes: /24 for IPv4, /64 for
    IPv6 (one subnet or one household), the text itself when it is not an address (AWS
    writes service names such as `lambda.amazonaws.com` there).

    >>> network("10.244.3.17"), network("2001:db8::1"), network("")
    ('10.244.3.0/24', '2001:db8::/64', '')
    """
    if not ip:
        return ""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# Internal address space: RFC 1918, carrier-grade NAT, loopback, link-local, IPv6 ULA.
# Everything else, documentation ranges included, counts as outside.
INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


@lru_cache(maxsize=65536)
def is_private(net: str) -> bool:
    """Whether a network is internal (see INTERNAL) or an AWS service name; an outside
    address is a stronger signal than a new pod subnet.

    >>> is_private("10.244.3.0/24"), is_private("198.51.100.0/24"), is_private("lambda.aws")
    (True, False, True)
    """
    if not net:
        return True
    try:
        network_ = ipaddress.ip_network(net)
    except ValueError:
        return True
    return any(
        network_.version == inside.version and network_.subnet_of(inside)  # type: ignore[arg-type]
        for inside in INTERNAL
    )


@lru_cache(maxsize=65536)
def client_family(user_agent: str) -> str:
    """The client software behind a user agent, without versions: what a stolen credential
    replayed with other tools changes.

    >>> client_family("aws-cli/2.15.30 Python/3.11.8"), client_family("[Boto3/1.34 md/x]")
    ('aws-cli', 'boto3')
    >>> client_family("Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0"), client_family("")
    ('mozilla', '')
    """
    text = user_agent.strip().lstrip("[").lower()
    for sep in ("/", " ", "("):
        text = text.split(sep, 1)[0]
    return text


def _levels(notes: np.ndarray) -> np.ndarray:
    """`control_level` of each note, through the distinct notes only."""
    if not len(notes):
        return np.zeros(0, np.int8)
    codes, uniques = pd.factorize(notes)
    levels: np.ndarray = np.array([control_level(v) for v in uniques], np.int8)[codes]
    return levels


def control_level(note: str) -> int:
    """2 for a note marking tampering with audit, 1 for another control-plane change, else 0.

    >>> control_level("audit tampering: x"), control_level("no eventID; control-plane: y")
    (2, 1)
    """
    if TAMPER_NOTE in note:
        return 2
    return 1 if CONTROL_NOTE in note else 0


@lru_cache(maxsize=65536)
def area(secret: str) -> str:
    """The folder a secret lives in, two levels deep (`secret/payments/db` -> `secret/
    payments`): teams own folders, so reading into a folder one never touched is what
    "another team's secret" looks like across Vault, AWS, GCP and Azure names.

    >>> area("secret/payments/stripe/key"), area("prod/db"), area("standalone")
    ('secret/payments', 'prod/db', 'standalone')
    """
    parts = [p for p in secret.split("/") if p]
    return "/".join(parts[:2])
