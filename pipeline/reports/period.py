"""Review periods: a calendar quarter or inclusive days, in the report's time zone.

Auditors name periods in local calendar terms ("Q3 2026", "1 July to 30 September"), so
the boundaries are local midnights, carried as UTC instants for the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.errors import InputError

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until) in UTC, with the label and zone it was named in."""

    since: datetime
    until: datetime
    label: str
    timezone: str

    @property
    def first_day(self) -> date:
        return self.since.astimezone(ZoneInfo(self.timezone)).date()

    @property
    def last_day(self) -> date:
        return (self.until.astimezone(ZoneInfo(self.timezone)) - timedelta(days=1)).date()

    @property
    def slug(self) -> str:
        """The label as a file name: `2026Q3`, `2026-03-01_2026-05-31`."""
        return self.label.replace(" to ", "_")

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def quarter(text: str, timezone: str = "UTC") -> Period:
    """`2026Q3` (or `2026-Q3`): 1 July to 30 September 2026, local midnights.

    >>> p = quarter("2026Q3")
    >>> p.since.isoformat(), p.until.isoformat(), p.label
    ('2026-07-01T00:00:00+00:00', '2026-10-01T00:00:00+00:00', '2026Q3')
    """
    match = _QUARTER.match(text.strip())
    if not match:
        raise InputError(f"--quarter {text!r} is not a quarter; write it like 2026Q3")
    year, q = int(match[1]), int(match[2])
    start = date(year, 3 * q - 2, 1)
    end = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
    return _period(start, end, f"{year}Q{q}", timezone)


def days(first: str, last: str, timezone: str = "UTC") -> Period:
    """From the first to the last day, both inclusive (`YYYY-MM-DD`).

    >>> p = days("2026-03-01", "2026-05-31", "Europe/Berlin")
    >>> p.since.isoformat(), p.until.isoformat(), p.days
    ('2026-02-28T23:00:00+00:00', '2026-05-31T22:00:00+00:00', 92)
    """
    start, end = _day(first, "--from"), _day(last, "--to")
    if end < start:
        raise InputError(f"--to {last} is before --from {first}")
    label = f"{start.isoformat()} to {end.isoformat()}"
    return _period(start, end + timedelta(days=1), label, timezone)


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{name} {text!r} is not a day; write it like 2026-07-01") from None


def _period(start: date, end: date, label: str, timezone: str) -> Period:
    zone = ZoneInfo(timezone)

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)

    return Period(midnight(start), midnight(end), label, timezone)
