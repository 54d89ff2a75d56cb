from __future__ import annotations

from judge import judge
from world import after, row


def test_reading_another_teams_secret(trained):
    rows = [
        row("orders/orders-api", after(10), "secret/payments/db"),
        row("orders/orders-api", after(10.1), "secret/orders/db"),
    ]
    [finding] = judge("unexpected_accessor", trained, rows)
    assert finding.evidence == (rows[0].event_id,)
    assert "secret/payments/db" in finding.explanation
    assert "payments/payments-api" in finding.explanation
    assert finding.severity == "high"


def test_own_folder_and_unowned_secrets_are_fine(trained):
    rows = [
        row("orders/orders-api", after(10), "secret/orders/new-key"),  # its own folder
        row("orders/orders-api", after(10), "secret/brand-new/thing"),  # nobody's yet
    ]
    assert judge("unexpected_accessor", trained, rows) == []


def test_shared_secrets_are_nobodys(trained):
    # secret/shared/tls has two readers: shared when two is enough to count as common.
    rows = [row("alice", after(10), "secret/shared/tls", ip="192.168.10.4", kind="human")]
    assert judge("unexpected_accessor", trained, rows)
    assert judge("unexpected_accessor", trained, rows, common_min=2, common_fraction=0.1) == []


def test_a_new_identity_reaching_into_an_owned_folder(trained):
    rows = [row("newcomer", after(10), "secret/payments/stripe-key")]
    [finding] = judge("unexpected_accessor", trained, rows)
    assert "no history yet" in finding.explanation


def test_denied_reads_are_left_to_denied_burst(trained):
    rows = [row("orders/orders-api", after(10), "secret/payments/db", outcome="denied")]
    assert judge("unexpected_accessor", trained, rows) == []


def test_secrets_read_from_many_teams_home_folders_are_shared(trained):
    # secret/shared/tls is read by orders-api and payments-api, whose homes differ.
    rows = [row("alice", after(10), "secret/shared/tls", ip="192.168.10.4", kind="human")]
    assert judge("unexpected_accessor", trained, rows, shared_homes=2) == []


def test_a_secret_only_people_read_is_not_another_services(trained):
    rows = [row("nightly-report", after(10), "secret/orders/db", ip="10.0.5.5")]
    trained.accessors["secret/orders/db"] = {"alice"}
    trained.area_users["secret/orders"] = {"alice"}
    assert judge("unexpected_accessor", trained, rows) == []
    assert judge("unexpected_accessor", trained, rows, people_only_factor=1.0)
