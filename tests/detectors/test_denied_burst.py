from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, row


def probes(ident: str, n: int, kind: str = "service") -> list:
    return [
        row(
            ident,
            after(10) + timedelta(seconds=20 * i),
            f"secret/x/{i}",
            outcome="denied",
            kind=kind,
        )
        for i in range(n)
    ]


def test_burst_of_denials(trained):
    rows = probes("orders/orders-api", 12)
    finding, hourly = judge("denied_burst", trained, rows)  # 12 in 10 minutes, 12 in the hour
    assert hourly.end_us - hourly.start_us == 3600 * 10**6
    assert len(finding.evidence) == 12
    assert "denied 12 times in 10 minutes" in finding.explanation
    assert "worst 10 minutes before had 0" in finding.explanation


def test_a_few_denials_are_normal_life(trained):
    assert judge("denied_burst", trained, probes("orders/orders-api", 4)) == []


def test_new_identities_need_twice_the_floor(trained):
    assert judge("denied_burst", trained, probes("newcomer", 8)) == []
    finding, *_ = judge("denied_burst", trained, probes("newcomer", 10))
    assert "too new" in finding.explanation


def test_an_identity_that_is_always_denied_has_that_in_its_norm(trained):
    trained.denied_max[trained.index["orders/orders-api"]] = 10
    trained.denied_max_hour[trained.index["orders/orders-api"]] = 30
    assert judge("denied_burst", trained, probes("orders/orders-api", 12)) == []


def test_probing_paced_under_the_window_is_caught_by_the_hour(trained):
    slow = [
        row(
            "orders/orders-api",
            after(10) + timedelta(minutes=5 * i),
            f"secret/x/{i}",
            outcome="denied",
        )
        for i in range(12)
    ]  # 2 per 10 minutes, 12 in the hour
    [finding] = judge("denied_burst", trained, slow)
    assert "denied 12 times in 60 minutes" in finding.explanation
