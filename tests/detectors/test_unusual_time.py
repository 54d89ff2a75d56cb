from __future__ import annotations

from datetime import timedelta

from judge import judge
from world import after, row


def test_person_at_three_in_the_morning(trained):
    rows = [
        row(
            "alice",
            after(3) + timedelta(minutes=10),
            "secret/orders/db",
            ip="192.168.10.4",
            kind="human",
        )
    ]
    [finding] = judge("unusual_time", trained, rows)
    assert "03:10 on Monday" in finding.explanation
    assert "0 of its last 8 weeks" in finding.explanation


def test_usual_hours_are_fine(trained):
    rows = [row("alice", after(11), "secret/orders/db", ip="192.168.10.4", kind="human")]
    assert judge("unusual_time", trained, rows) == []


def test_the_next_hour_to_a_used_one_is_smoothed(trained):
    # alice works 09:00-17:00; 17:xx borders her last hour and is not strange.
    rows = [row("alice", after(17.5), "secret/orders/db", ip="192.168.10.4", kind="human")]
    assert judge("unusual_time", trained, rows) == []


def test_rescheduled_job_doing_its_routine_is_discounted(trained):
    routine = [
        row(
            "nightly-report",
            after(5) + timedelta(seconds=i),
            "secret/reports/warehouse",
            ip="10.0.5.5",
        )
        for i in range(3)
    ]
    assert judge("unusual_time", trained, routine) == []
    odd = [*routine, row("nightly-report", after(5), "secret/payments/db", ip="10.0.5.5")]
    [finding] = judge("unusual_time", trained, odd)
    assert "05:00 on Monday" in finding.explanation


def test_weekend_use_by_a_weekday_person(trained):
    saturday = after(5 * 24 + 11)
    rows = [row("alice", saturday, "secret/orders/db", ip="192.168.10.4", kind="human")]
    [finding] = judge("unusual_time", trained, rows)
    assert "Saturday" in finding.explanation and "weekend days" in finding.explanation


def test_people_often_up_at_odd_hours_are_not_judged_by_the_hour(trained):
    r = trained.index["alice"]
    rows = [row("alice", after(3), "secret/orders/db", ip="192.168.10.4", kind="human")]
    trained.odd_days[r] = trained.active_days[r] // 20  # 5% of days: still judged
    [finding] = judge("unusual_time", trained, rows)
    assert "on 5% of its days" in finding.explanation
    trained.odd_days[r] = trained.active_days[r] // 8  # 12%: on call, the hour alone is moot
    assert judge("unusual_time", trained, rows) == []
