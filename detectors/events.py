"""The events frame detectors work on: the store's columns plus the integer time keys and
grouping keys every detector needs, computed once per batch with vectorized pandas.

Time keys are in the configured time zone (UTC by default), so "03:00 on Sunday" in an
explanation is the hour the people reading it live in.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import numpy as np
import pandas as pd

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
WEEK_US = 7 * DAY_US
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Actions that touch a secret (auth housekeeping and `other` do not).
ACCESS_ACTIONS = ("read", "list", "write", "delete", "rotate")


def prepare(events: pd.DataFrame, tz: str = "UTC", window_minutes: int = 10) -> pd.DataFrame:
    """Add `ts_us`, `uhour` (UTC hour index), local `hour` (absolute hour index), `day`,
    `week`, `how` (hour of week, Monday 00:00 = 0), `win` (absolute window index), `net`,
    `area`, `access` (touches a secret) and `denied` to a store frame.

    >>> f = pd.DataFrame({"ts": pd.to_datetime(["2026-05-03T03:10:00Z"]), "secret": ["a/b/c"],
    ...     "source_ip": ["10.1.2.3"], "identity": ["x"], "action": ["read"],
    ...     "outcome": ["success"], "event_id": ["e"]})
    >>> r = prepare(f).iloc[0]
    >>> int(r.how), DAYS[int(r.how) // 24], r.net, r.area
    (147, 'Sunday', '10.1.2.0/24', 'a/b')
    """
    frame = events.copy() if len(events) else events.head(0).copy()
    for column in ("secret", "source_ip", "identity"):
        frame[column] = frame[column].fillna("").astype(object)
    ts = frame["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = pd.to_datetime(ts, utc=True)
    ts_us = ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy()
    offset = _offsets_us(ts, tz)
    local = ts_us + offset
    frame["ts_us"] = ts_us
    frame["uhour"] = ts_us // HOUR_US
    frame["hour"] = local // HOUR_US
    frame["day"] = local // DAY_US
    # 1970-01-01 was a Thursday: shift so that weeks start on Monday.
    monday_based = local + 3 * DAY_US
    frame["week"] = monday_based // WEEK_US
    frame["how"] = (monday_based % WEEK_US) // HOUR_US
    frame["win"] = ts_us // (window_minutes * 60_000_000)
    frame["net"] = _map(frame["source_ip"], network)
    frame["area"] = _map(frame["secret"], area)
    frame["access"] = frame["action"].isin(ACCESS_ACTIONS).to_numpy() & (
        frame["secret"].fillna("").to_numpy() != ""
    )
    frame["denied"] = (frame["outcome"] == "denied").to_numpy()
    return frame


def _offsets_us(ts: pd.Series, tz: str) -> np.ndarray:
    if tz in ("UTC", "Etc/UTC"):
        return np.zeros(len(ts), dtype=np.int64)
    local = ts.dt.tz_convert(tz)
    return (
        (local.dt.tz_localize(None) - ts.dt.tz_localize(None))
        .to_numpy()
        .astype("timedelta64[us]")
        .astype(np.int64)
    )


def _map(column: pd.Series, fn) -> np.ndarray:  # noqa: ANN001
    """Apply a cached scalar function through the column's distinct values only."""
    values = column.fillna("").astype(object).to_numpy()
    if not len(values):
        return values
    uniques, inverse = np.unique(values.astype(str), return_inverse=True)
    mapped = np.array([fn(v) for v in uniques], dtype=object)
    return mapped[inverse]


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


@lru_cache(maxsize=65536)
def is_private(net: str) -> bool:
    """Whether a network is internal (RFC 1918, loopback, link-local, ULA) or an AWS
    service name; an outside address is a stronger signal than a new pod subnet."""
    if not net:
        return True
    try:
        return ipaddress.ip_network(net).is_private
    except ValueError:
        return True


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
