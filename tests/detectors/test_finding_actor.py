"""Explanations name the people behind a shared identity (issue 17 item 5): an SSO role used
by several people is one identity, and the evidence says whose sessions it holds."""

from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, row

from detectors.baseline import Baselines


def test_root_use_by_sso_sessions_names_the_people(trained: Baselines) -> None:
    rows = [
        row("root", after(3) + timedelta(minutes=m), f"secret/p/{m}", kind="root")._replace(
            actor=person
        )
        for m, person in enumerate(
            ["bob@example.com", "alice@example.com", None, "bob@example.com"]
        )
    ]
    [finding] = judge("root_token", trained, rows)
    assert finding.explanation.endswith(" Sessions of alice@example.com, bob@example.com.")


def test_no_person_no_sessions_sentence(trained: Baselines) -> None:
    [finding] = judge("root_token", trained, [row("root", after(3), kind="root")])
    assert "Sessions of" not in finding.explanation


def test_many_people_are_counted_not_all_listed(trained: Baselines) -> None:
    rows = [
        row("root", after(3) + timedelta(minutes=m), f"secret/p/{m}", kind="root")._replace(
            actor=f"p{m}@example.com"
        )
        for m in range(5)
    ]
    [finding] = judge("root_token", trained, rows)
    assert finding.explanation.endswith(
        " Sessions of p0@example.com, p1@example.com, p2@example.com and 2 more."
    )
