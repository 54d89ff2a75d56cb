from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, row


def test_any_root_use_is_critical_and_names_what_it_touched(trained):
    rows = [
        row("root", after(3) + timedelta(minutes=m), f"secret/p/{m}", kind="root") for m in range(3)
    ]
    [finding] = judge("root_token", trained, rows)
    assert finding.severity == "critical"
    assert finding.identity == "root"
    assert set(finding.evidence) == {r.event_id for r in rows}
    assert "3 requests" in finding.explanation and "secret/p/0" in finding.explanation


def test_services_are_not_root(trained):
    assert judge("root_token", trained, [row("orders/orders-api", after(3))]) == []


def test_severity_comes_from_config(trained):
    [finding] = judge("root_token", trained, [row("root", after(3), kind="root")], severity="high")
    assert finding.severity == "high"
