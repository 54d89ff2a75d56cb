from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, frame, row


def sweep(ident: str, n: int, folder: str = "secret/orders", kind: str = "service") -> list:
    return [
        row(
            ident,
            after(10) + timedelta(seconds=10 * i),
            f"{folder}/k{i}",
            kind=kind,
            ip="192.168.10.4" if kind == "human" else "10.244.1.7",
        )
        for i in range(n)
    ]


def test_many_secrets_never_touched(trained):
    rows = sweep("alice", 25, kind="human")
    finding, *_ = judge("enumeration", trained, rows)
    assert "25 distinct secrets (25 never before" in finding.explanation
    assert len(finding.evidence) == 25


def test_usual_secrets_read_often_are_not_enumeration(trained):
    rows = [
        row("orders/orders-api", after(10) + timedelta(seconds=i), "secret/orders/db")
        for i in range(60)
    ]
    assert judge("enumeration", trained, rows) == []


def test_new_identity_reading_its_configuration_at_start_up(trained):
    assert judge("enumeration", trained, sweep("newcomer", 20, "secret/newcomer")) == []
    assert judge("enumeration", trained, sweep("newcomer", 30, "secret/newcomer"))


def test_a_young_identity_is_not_told_it_never_read_what_it_did(trained):
    # Read in its first days (too young to be judged against): not "never before" now.
    trained.update(frame(sweep("newcomer", 20, "secret/newcomer")))
    rows = [
        row("newcomer", after(10) + timedelta(seconds=i), f"secret/newcomer/k{i % 20}")
        for i in range(30)
    ] + [
        row("newcomer", after(10) + timedelta(seconds=40 + i), f"secret/other/n{i}")
        for i in range(10)
    ]
    [finding] = judge("enumeration", trained, rows)
    assert "30 distinct secrets (10 never before" in finding.explanation
    assert "secret/newcomer" not in finding.explanation.split("e.g.")[1]
