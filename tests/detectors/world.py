"""A small, fully controlled world for detector tests: a few identities with regular habits
over several weeks, as `EventRow`s and as the frames detectors take."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd

from detectors.events import prepare
from pipeline.record import EventRow
from pipeline.store.rows import rows_to_arrow

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
TRAIN_DAYS = 56


def us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def row(
    ident: str,
    when: datetime,
    secret: str = "secret/orders/db",  # noqa: S107 - a path, not a password
    action: str = "read",
    outcome: str = "success",
    ip: str = "10.244.1.7",
    kind: str = "service",
    event_id: str | None = None,
) -> EventRow:
    eid = event_id or f"{ident}-{us(when)}-{secret}-{outcome}-{ip}"
    return EventRow(
        eid,
        us(when),
        "vault",
        "vault",
        ident,
        kind,
        secret,
        action,
        action,
        outcome,
        ip,
        "vault-client-go",
        eid,
        None,
        None,
    )


def world(days: int = TRAIN_DAYS, seed: int = 3) -> list[EventRow]:
    """Three teams' services, a nightly batch job and a person, `days` days from START.

    - orders-api: 24/7, 2-8 reads an hour of secret/orders/db and /stripe, from 10.244.1.0/24
    - payments-api: 24/7, reads secret/payments/db and /stripe-key, from 10.244.2.0/24
    - nightly-report: 02:00-02:10 every day, reads secret/reports/warehouse
    - alice (human): weekdays 09-17, reads secret/orders/* now and then, lists secret/orders
    - everyone reads secret/shared/tls sometimes
    """
    rng = random.Random(seed)
    rows: list[EventRow] = []
    for day in range(days):
        base = START + timedelta(days=day)
        for hour in range(24):
            at = base + timedelta(hours=hour)
            for _ in range(rng.randint(2, 8)):
                t = at + timedelta(seconds=rng.randrange(3600))
                rows.append(
                    row(
                        "orders/orders-api",
                        t,
                        rng.choice(["secret/orders/db", "secret/orders/stripe"]),
                    )
                )
            for _ in range(rng.randint(2, 8)):
                t = at + timedelta(seconds=rng.randrange(3600))
                rows.append(
                    row(
                        "payments/payments-api",
                        t,
                        rng.choice(["secret/payments/db", "secret/payments/stripe-key"]),
                        ip="10.244.2.9",
                    )
                )
            if rng.random() < 0.2:
                t = at + timedelta(seconds=rng.randrange(3600))
                who = rng.choice(["orders/orders-api", "payments/payments-api"])
                ip = "10.244.1.7" if who.startswith("orders") else "10.244.2.9"
                rows.append(row(who, t, "secret/shared/tls", ip=ip))
        for k in range(3):
            t = base + timedelta(hours=2, minutes=rng.randrange(10), seconds=k)
            rows.append(row("nightly-report", t, "secret/reports/warehouse", ip="10.0.5.5"))
        if base.weekday() < 5:
            for _ in range(rng.randint(3, 10)):
                t = base + timedelta(hours=9, seconds=rng.randrange(8 * 3600))
                secret, action = rng.choice(
                    [
                        ("secret/orders/db", "read"),
                        ("secret/orders/stripe", "read"),
                        ("secret/orders/", "list"),
                    ]
                )
                rows.append(row("alice", t, secret, action, ip="192.168.10.4", kind="human"))
    rows.sort(key=lambda r: r.ts_us)
    return rows


def frame(rows: list[EventRow]) -> pd.DataFrame:
    """Rows as a store-shaped frame, prepared for detectors."""
    return prepare(rows_to_arrow(sorted(rows, key=lambda r: r.ts_us)).to_pandas())


def after(hours: float) -> datetime:
    """A moment `hours` into the day after the training window."""
    return START + timedelta(days=TRAIN_DAYS, hours=hours)
