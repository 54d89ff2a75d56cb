"""The archive evidence a report rests on: which signed digests (pipeline/archive/) cover
the days of its period, listed in its manifest by name and SHA-256, and re-checked by
`report --verify` (the digests unchanged, then `archive verify` over those days).

Only names are kept, never a path: a digest is looked for in the `digests/` folder of the
archive the config names, so a manifest cannot make `--verify` read outside it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.archive import layout
from pipeline.archive.chain import read
from pipeline.archive.durable import sha256_file
from pipeline.archive.verify import verify
from pipeline.errors import StoreError


def utc_days(since: datetime, until: datetime) -> tuple[date, date]:
    """The first and last UTC day that overlap [since, until)."""
    first = since.astimezone(UTC).date()
    return first, (until.astimezone(UTC) - timedelta(microseconds=1)).date()


def digests(archive: Path, since: datetime, until: datetime) -> dict[str, Any] | None:
    """The manifest's `archive` section: every day digest (a record of kind `day`) of a UTC
    day in [since, until), by name and SHA-256, in chain order; None when there is none
    (a period read from the hot store alone)."""
    first, last = utc_days(since, until)
    place = archive / layout.DIGESTS
    found: list[tuple[int, dict[str, str]]] = []
    if place.is_dir():
        for path in place.iterdir():
            parsed = layout.parse_digest_name(path.name)
            if parsed is None or not first <= parsed[0] <= last or path.is_symlink():
                continue
            if read(path)[0].get("kind") != "day":
                continue
            found.append((parsed[1], {"name": path.name, "sha256": sha256_file(path)[0]}))
    if not found:
        return None
    return {
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "digests": [entry for _, entry in sorted(found)],
    }


def check(archive: Path | None, section: object) -> list[str]:
    """Problems with the archive evidence a manifest lists (none: intact). Each digest
    must be where its name says and unchanged; then the chain and every file of those
    days are verified (pipeline.archive.verify), each of its problems reported."""
    if not isinstance(section, dict) or not isinstance(section.get("digests"), list):
        return ["archive: the manifest's archive section is not a list of digests"]
    listed = section["digests"]
    if archive is None:
        return [
            f"archive: the report rests on {len(listed)} archive digests; pass --config with "
            "the config naming the archive (retention.archive.path) to re-verify them"
        ]
    problems: list[str] = []
    days: list[date] = []
    for entry in listed:
        name = entry.get("name") if isinstance(entry, dict) else None
        parsed = layout.parse_digest_name(name) if isinstance(name, str) else None
        if parsed is None:
            problems.append(f"archive: the manifest lists {name!r}, not a digest name: refused")
            continue
        days.append(parsed[0])
        path = archive / layout.DIGESTS / str(name)
        if path.is_symlink() or not path.is_file():
            problems.append(f"archive digest {layout.DIGESTS}/{name}: missing")
        elif sha256_file(path)[0] != entry.get("sha256"):
            problems.append(
                f"archive digest {layout.DIGESTS}/{name}: SHA-256 differs from the manifest"
            )
    if not days:
        return problems
    try:
        found = verify(archive, first=min(days), last=max(days))
    except StoreError as exc:
        return [*problems, f"archive: {exc}"]
    return [*problems, *(f"archive: {p}" for p in found.problems)]
