"""The access-review manifest of each `report` run, archived with the events it rests on:
copied durably into `<archive>/reports/` and listed in a signed `report` record of the
chain, so what was reviewed stays provable as long as the evidence.

>>> report_name(datetime(2026, 12, 3, 7, 5, tzinfo=UTC), "access-review-2026Q3")
'2026-12-03T070500Z.access-review-2026Q3.manifest.json'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.archive import chain, keys, layout
from pipeline.archive.durable import sha256_bytes, write_durably
from pipeline.archive.settings import ArchiveSettings


def report_name(now: datetime, folder_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", folder_name).strip("._") or "report"
    return f"{now.astimezone(UTC):%Y-%m-%dT%H%M%SZ}.{safe[:80]}.manifest.json"


def archive_manifest(
    archive: Path, key: Ed25519PrivateKey, manifest: Path, now: datetime | None = None
) -> Path:
    """Copy a report's manifest.json into the archive and sign it into the chain; return
    the archived copy."""
    when = now or datetime.now(UTC)
    data = manifest.read_bytes()
    with chain.locked(archive):
        path = archive / layout.REPORTS / report_name(when, manifest.parent.name)
        write_durably(path, data)
        entry = {
            "path": path.relative_to(archive).as_posix(),
            "kind": "report",
            "sha256": sha256_bytes(data),
            "bytes": len(data),
            "rows": 0,
            "first_ts": when.isoformat(),
            "last_ts": when.isoformat(),
        }
        chain.append(archive, key, "report", when.date(), {"files": [entry]}, when)
    return path


def archive_report(settings: ArchiveSettings, manifest: Path) -> Path:
    """`report --out` with `retention.archive` configured: archive its manifest."""
    return archive_manifest(settings.path, keys.load_private(settings), manifest)
