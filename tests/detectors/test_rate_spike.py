from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, row


def burst(n: int, ident: str = "orders/orders-api") -> list:
    return [row(ident, after(14) + timedelta(seconds=3 * i)) for i in range(n)]


def test_ten_times_the_busiest_hour(trained):
    [finding] = judge("rate_spike", trained, burst(200))
    assert finding.score > 10
    assert "200 requests" in finding.explanation and "last 8 weeks" in finding.explanation


def test_busy_but_normal_hour(trained):
    assert judge("rate_spike", trained, burst(8)) == []


def test_min_count_keeps_tiny_identities_quiet(trained):
    # nightly-report makes 3 calls a day; 25 at its hour is x8 but below min_count 30.
    rows = [
        row(
            "nightly-report",
            after(2) + timedelta(seconds=i),
            "secret/reports/warehouse",
            ip="10.0.5.5",
        )
        for i in range(25)
    ]
    assert judge("rate_spike", trained, rows) == []
    assert judge("rate_spike", trained, rows, min_count=20)
