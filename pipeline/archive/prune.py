"""`secretwatch archive prune`: the far end of retention. Files of days older than
`retention.archive_years` are removed, but only when asked, and never silently: a signed
prune record joins the chain first, listing each removed file with its SHA-256, size and
rows and the digest (name and SHA-256) that listed it, so `archive verify` shows a
deliberate deletion where it would otherwise show missing files. Digests stay: they are
small and hold no event data, and they keep the chain whole.

A crash after the record and before the deletions leaves files the record already names;
the next prune removes them without a second record.

>>> years_before(date(2028, 2, 29), 7)
datetime.date(2021, 2, 28)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.archive import chain, layout
from pipeline.archive.durable import sha256_bytes
from pipeline.paths import sync_folder


@dataclass
class Pruned:
    cutoff: date
    removed: list[dict[str, Any]] = field(default_factory=list)
    record: Path | None = None


def years_before(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February in a year without one
        return today.replace(year=today.year - years, day=28)


def prune(
    folder: Path, key: Ed25519PrivateKey, years: int, today: date, dry_run: bool = False
) -> Pruned:
    """Remove the files of days before `today` - `years` (a signed record first)."""
    done = Pruned(years_before(today, years))
    with chain.locked(folder):
        already: set[str] = set()
        candidates: list[dict[str, Any]] = []
        for path in layout.chain_files(folder):
            record, data = chain.read(path)
            if record.get("kind") == "prune":
                already.update(e["path"] for e in record.get("removed", []))
                continue
            if date.fromisoformat(str(record.get("day"))) >= done.cutoff:
                continue
            digest = {"name": path.relative_to(folder).as_posix(), "sha256": sha256_bytes(data)}
            for entry in record.get("files", []):
                held = layout.inside(folder, str(entry.get("path")))
                if held is not None and held.exists():
                    kept = ("path", "kind", "sha256", "bytes", "rows", "first_ts", "last_ts")
                    candidates.append({**{k: entry.get(k) for k in kept}, "digest": digest})
        fresh = [c for c in candidates if c["path"] not in already]
        done.removed = fresh
        if dry_run:
            return done
        if fresh:
            fields = {"cutoff": done.cutoff.isoformat(), "archive_years": years, "removed": fresh}
            done.record, _ = chain.append(folder, key, "prune", today, fields)
        folders: set[Path] = set()
        for entry in candidates:
            path = folder / entry["path"]  # checked inside the archive above
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        for place in folders:
            sync_folder(place)
    return done
