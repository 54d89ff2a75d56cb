from __future__ import annotations

from judge import judge
from world import after, row


def test_outside_address_for_a_service_that_never_left_its_subnet(trained):
    rows = [row("nightly-report", after(2), "secret/reports/warehouse", ip="185.220.101.4")]
    [finding] = judge("new_source", trained, rows)
    assert "185.220.101.0/24" in finding.explanation and "outside" in finding.explanation
    assert finding.score == 1.0


def test_known_networks_and_other_services_subnets(trained):
    rows = [
        row("orders/orders-api", after(2), ip="10.244.1.99"),  # same /24 as ever
        row("nightly-report", after(2), "secret/reports/warehouse", ip="10.244.2.50"),
    ]
    # 10.244.2.0/24 is payments-api's: internal and used by others -> below threshold.
    assert judge("new_source", trained, rows) == []


def test_cold_identities_are_not_judged(trained):
    assert judge("new_source", trained, [row("newcomer", after(2), ip="185.1.2.3")]) == []


def test_new_client_software_from_a_known_network(trained):
    rows = [row("nightly-report", after(2), "secret/reports/warehouse", ip="10.0.5.5")]
    rows = [r._replace(user_agent="curl/8.5.0") for r in rows]
    [finding] = judge("new_source", trained, rows)
    assert "with curl" in finding.explanation and "vault-client-go" in finding.explanation


def test_documentation_ranges_are_outside(trained):
    rows = [row("nightly-report", after(2), "secret/reports/warehouse", ip="198.51.100.23")]
    [finding] = judge("new_source", trained, rows)
    assert "an outside network" in finding.explanation


def test_identities_that_roam_are_discounted(trained):
    r = trained.index["nightly-report"]
    trained.net_new_days[r] = trained.active_days[r] // 2  # a new network every other day
    rows = [row("nightly-report", after(2), "secret/reports/warehouse", ip="185.220.101.4")]
    assert judge("new_source", trained, rows) == []
