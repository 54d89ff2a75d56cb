"""Peer groups: a first read of a secret the identity's peers read routinely is less
surprising than one no peer reads, and a new member starts from its group's baseline.

The small world plus `orders/fulfilment` (team orders, like orders-api), which reads
secret/billing/token and 25 secret/billing/k* secrets every day; nobody else reads them."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from judge import judge
from world import START, TRAIN_DAYS, after, frame, row, world

from detectors.baseline import Baselines
from detectors.engine import train
from detectors.peers import group_of, peers
from detectors.settings import DetectorsConfig

TOKEN = "secret/billing/token"  # noqa: S105 - a path, not a password
BILLING = [f"secret/billing/k{i}" for i in range(25)]


@pytest.fixture(scope="module")
def grouped_once() -> Baselines:
    rng = random.Random(11)
    extra = [
        row(
            "orders/fulfilment",
            START + timedelta(hours=h, seconds=rng.randrange(3600)),
            rng.choice([TOKEN, *BILLING]),
            ip="10.244.1.8",
        )
        for h in range(TRAIN_DAYS * 24)
        for _ in range(3)
    ]
    return train(frame(sorted(world() + extra, key=lambda r: r.ts_us)), DetectorsConfig())


@pytest.fixture
def grouped(grouped_once: Baselines) -> Baselines:
    return Baselines.from_rows(grouped_once.to_rows(), **grouped_once.meta())


def reads(ident: str, secrets: list[str], gap_s: float = 1.0) -> list:
    return [
        row(ident, after(10) + timedelta(seconds=gap_s * i), s, ip="10.244.1.9")
        for i, s in enumerate(secrets)
    ]


def test_groups_from_names_and_home_folders(grouped):
    assert group_of("orders/fulfilment") == group_of("orders/orders-api") == "team orders"
    mine = peers(grouped, "orders/orders-api").why
    assert mine["orders/fulfilment"] == "same team orders"
    assert "payments/payments-api" not in mine
    # alice reads secret/orders most too, but a person is no service's peer.
    assert "alice" not in mine
    grouped.add_identities(["orders-worker"], ["service"])
    grouped.areas[grouped.index["orders-worker"]]["secret/orders"] = 40
    grouped.area_users["secret/orders"].add("orders-worker")
    assert peers(grouped, "orders/orders-api").why["orders-worker"] == (
        "same home folder secret/orders"
    )


def test_a_secret_peers_read_routinely_is_less_surprising(grouped):
    # Alone, orders-api's first read of billing's token would be flagged (one owner) ...
    [plain] = judge(
        "unexpected_accessor", grouped, reads("orders/orders-api", [TOKEN]), peer_factor=1.0
    )
    # ... its peer orders/fulfilment reads it all the time: below the threshold by default,
    assert judge("unexpected_accessor", grouped, reads("orders/orders-api", [TOKEN])) == []
    # and, where still raised, scored lower and explained.
    [peer] = judge(
        "unexpected_accessor", grouped, reads("orders/orders-api", [TOKEN]), peer_factor=0.6
    )
    assert peer.score == pytest.approx(plain.score * 0.6)
    assert (
        "First read by orders/orders-api, routinely read by peers orders/fulfilment "
        "(same team orders)" in peer.explanation
    )


def test_a_secret_no_peer_reads_keeps_its_score(grouped):
    [f] = judge("unexpected_accessor", grouped, reads("orders/orders-api", ["secret/payments/db"]))
    assert "routinely read by peers" not in f.explanation
    [g] = judge(
        "unexpected_accessor",
        grouped,
        reads("orders/orders-api", ["secret/payments/db"]),
        peer_factor=0.1,
    )
    assert g.score == pytest.approx(f.score)


def test_a_peer_that_read_it_once_is_not_routine(grouped):
    peer = grouped.index["orders/fulfilment"]
    grouped.secrets[peer].add("secret/payments/db")
    grouped.areas[peer]["secret/payments"] = 1
    grouped.accessors["secret/payments/db"].add("orders/fulfilment")
    # Its peer read the folder once: no discount ...
    [f] = judge("unexpected_accessor", grouped, reads("orders/orders-api", ["secret/payments/db"]))
    assert "routinely read by peers" not in f.explanation
    # ... ten times is routine.
    grouped.areas[peer]["secret/payments"] = 10
    assert (
        judge("unexpected_accessor", grouped, reads("orders/orders-api", ["secret/payments/db"]))
        == []
    )


def test_a_new_member_starts_from_its_groups_baseline(grouped):
    # A service never seen, in team orders, reading what its team reads: not unexpected ...
    assert judge("unexpected_accessor", grouped, reads("orders/returns-api", [TOKEN])) == []
    # ... nor a sweep when it reads its team's 25 secrets at start-up.
    assert judge("cold_enumeration", grouped, reads("orders/returns-api", BILLING)) == []
    # Another team's secret is still unexpected, and a stranger's sweep is still one.
    assert judge(
        "unexpected_accessor", grouped, reads("orders/returns-api", ["secret/payments/db"])
    )
    assert judge("unexpected_accessor", grouped, reads("stranger", [TOKEN]))
    [sweep] = judge("cold_enumeration", grouped, reads("stranger", BILLING))
    assert "25 distinct secrets" in sweep.explanation


POLICIES = {
    "orders/fulfilment": ["default", "billing-read"],
    "ledger-sync": ["billing-read", "default"],  # no name group: only its policies tie it
    "alice": ["default"],  # every token's policy ties nobody to anybody
}


def test_identities_holding_the_same_vault_policies_are_peers(grouped):
    assert group_of("ledger-sync") == ""
    assert peers(grouped, "ledger-sync").why == {}
    why = peers(grouped, "ledger-sync", POLICIES).why
    assert why["orders/fulfilment"] == "same Vault policies billing-read"
    assert "alice" not in peers(grouped, "orders/orders-api", POLICIES).why
    with_policies = DetectorsConfig(policies=POLICIES)
    # a new holder of billing's policy reading billing's secrets starts from its peer's
    # baseline: neither unexpected nor a sweep ...
    assert judge("unexpected_accessor", grouped, reads("ledger-sync", [TOKEN]), with_policies) == []
    assert judge("cold_enumeration", grouped, reads("ledger-sync", BILLING), with_policies) == []
    # ... without the policies it is a stranger
    assert judge("unexpected_accessor", grouped, reads("ledger-sync", [TOKEN]))
    assert judge("cold_enumeration", grouped, reads("ledger-sync", BILLING))
