"""Where everything lives in an archive folder, for the archiver, `archive verify` and the
readers of archived periods.

    <archive>/events/YYYY/MM/YYYY-MM-DD.<source>.<part>.parquet
        one file per UTC day and source; part 0 first, a later run that finds hot events
        of a day already archived (late arrivals) writes part 1, 2, ...
    <archive>/alerts/YYYY/MM/YYYY-MM-DD.<part>.jsonl
        the alerts whose window ended that day, archived with the day's events
    <archive>/reports/YYYY-MM-DDTHHMMSSZ.<name>.manifest.json
        the access-review manifest of each `report --out` run with an archive configured
    <archive>/digests/YYYY-MM-DD.<seq>.json
        the signed digest of what one run archived of that day; <seq> is the record's
        position in the chain (000000 first, global across days and prune records), so a
        re-digest of a day (a later part) is a new record and the order is unambiguous
    <archive>/prunes/YYYY-MM-DD.<seq>.json
        a signed prune record in the same chain: what `archive prune` removed, made that day
    <archive>/public_key.pem
        the public half of the signing key, for convenience (an auditor should verify with
        a copy of the key kept elsewhere: `archive verify --public-key`)

Files being written carry a `.tmp` suffix until they are fsynced and renamed.

>>> from datetime import date
>>> event_file(Path("/a"), date(2025, 3, 9), "vault", 0).as_posix()
'/a/events/2025/03/2025-03-09.vault.0.parquet'
>>> digest_file(Path("/a"), date(2025, 3, 9), 12).name
'2025-03-09.000012.json'
>>> parse_digest_name("2025-03-09.000012.json")
(datetime.date(2025, 3, 9), 12)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

EVENTS = "events"
ALERTS = "alerts"
REPORTS = "reports"
DIGESTS = "digests"
PRUNES = "prunes"
PUBLIC_KEY = "public_key.pem"
TMP_SUFFIX = ".tmp"

_EVENT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.([a-z0-9_-]+)\.(\d+)\.parquet$")
_CHAIN_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(\d{6,})\.json$")


def _month(archive: Path, kind: str, day: date) -> Path:
    return archive / kind / f"{day.year:04d}" / f"{day.month:02d}"


def event_file(archive: Path, day: date, source: str, part: int) -> Path:
    return _month(archive, EVENTS, day) / f"{day.isoformat()}.{source}.{part}.parquet"


def alerts_file(archive: Path, day: date, part: int) -> Path:
    return _month(archive, ALERTS, day) / f"{day.isoformat()}.{part}.jsonl"


def digest_file(archive: Path, day: date, seq: int) -> Path:
    return archive / DIGESTS / f"{day.isoformat()}.{seq:06d}.json"


def prune_file(archive: Path, day: date, seq: int) -> Path:
    return archive / PRUNES / f"{day.isoformat()}.{seq:06d}.json"


def parse_event_name(name: str) -> tuple[date, str, int] | None:
    """(day, source, part) of an event file name, None for anything else."""
    match = _EVENT_NAME.match(name)
    if match is None:
        return None
    return date.fromisoformat(match[1]), match[2], int(match[3])


def parse_digest_name(name: str) -> tuple[date, int] | None:
    """(day, chain position) of a digest or prune record name, None for anything else."""
    match = _CHAIN_NAME.match(name)
    if match is None:
        return None
    return date.fromisoformat(match[1]), int(match[2])


def event_files(archive: Path, since: datetime | None, until: datetime | None) -> list[Path]:
    """The archived event files of every UTC day that overlaps [since, until) (None: open
    ended), in (day, source, part) order. Files only: whether they are intact is for
    `archive verify` (pipeline.archive.verify) to say."""
    found: list[tuple[date, str, int, Path]] = []
    for path in (archive / EVENTS).glob("*/*/*.parquet"):
        parsed = parse_event_name(path.name)
        if parsed is not None and _overlaps(parsed[0], since, until):
            found.append((*parsed, path))
    return [path for *_, path in sorted(found)]


def digest_files(archive: Path, since: datetime | None, until: datetime | None) -> list[Path]:
    """The digests of every UTC day that overlaps [since, until), in chain order: what a
    report over archived days rests on (check them with pipeline.archive.verify)."""
    found: list[tuple[int, Path]] = []
    for path in (archive / DIGESTS).glob("*.json"):
        parsed = parse_digest_name(path.name)
        if parsed is not None and _overlaps(parsed[0], since, until):
            found.append((parsed[1], path))
    return [path for _, path in sorted(found)]


def _overlaps(day: date, since: datetime | None, until: datetime | None) -> bool:
    """Whether the UTC day overlaps [since, until), bounds in any time zone (naive: UTC).

    >>> from datetime import timedelta, timezone
    >>> plus2 = timezone(timedelta(hours=2))
    >>> _overlaps(date(2025, 3, 8), datetime(2025, 3, 9, 1, tzinfo=plus2), None)
    True
    >>> _overlaps(date(2025, 3, 9), None, datetime(2025, 3, 9, 1, tzinfo=plus2))
    False
    """
    start = datetime.combine(day, time.min, UTC)
    if since is not None and start + timedelta(days=1) <= _aware(since):
        return False
    return until is None or start < _aware(until)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def chain_files(archive: Path) -> list[Path]:
    """Every digest and prune record, in chain order (by position)."""
    found: list[tuple[int, Path]] = []
    for kind in (DIGESTS, PRUNES):
        for path in (archive / kind).glob("*.json"):
            parsed = parse_digest_name(path.name)
            if parsed is not None:
                found.append((parsed[1], path))
    return [path for _, path in sorted(found)]


def plain_relative(relative: str) -> bool:
    """Whether a path a record names is a plain relative one: no root, no `..`, no
    backslash, no empty part (a cheap check; `inside` also resolves links).

    >>> plain_relative("events/2025/x.parquet"), plain_relative("../x"), plain_relative("/x")
    (True, False, False)
    """
    parts = relative.split("/")
    return "\\" not in relative and all(p not in ("", ".", "..") for p in parts)


def inside(archive: Path, relative: str) -> Path | None:
    """The file a record names, if its path stays inside the archive; None (refuse) for an
    absolute path, `..`, or a link out.

    >>> inside(Path("/a"), "events/x.parquet").as_posix(), inside(Path("/a"), "../etc/x")
    ('/a/events/x.parquet', None)
    """
    if not plain_relative(relative):
        return None
    path = archive / relative
    return path if path.resolve().is_relative_to(archive.resolve()) else None
