"""The signed chain of digest records: one per archived day (and per later part of a day,
per archived report manifest, per prune), each holding the previous record's SHA-256, so
an edited, deleted, swapped or reordered record breaks a link anyone can check.

A record is JSON: `format`, `kind` (day, report or prune), `seq` (its chain position,
also in its file name), `day`, `created_at`, `previous` (the name, SHA-256 and day of
the record before it; null for the first), `files` (each with path, sha256, bytes, rows
and first/last ts), for a prune `removed` (see prune.py), `key_fingerprint` and
`signature`: Ed25519 over the canonical encoding (pipeline.archive.keys.canonical) of
everything else. Appending takes a lock file in the archive, so `serve`'s schedule, a
manual `archive` and a `report --out` never race for a position.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.archive import keys, layout
from pipeline.archive.durable import sha256_bytes, write_durably
from pipeline.errors import StoreError
from pipeline.paths import make_folder

FORMAT = "secretwatch-archive/1"
KINDS = ("day", "report", "prune")
LOCK = ".lock"


@dataclass(frozen=True, slots=True)
class Link:
    """Where the chain ends: the last record's name (relative to the archive), SHA-256 and
    day, and the position the next record takes."""

    name: str | None
    sha256: str | None
    day: str | None
    next_seq: int


def read(path: Path) -> tuple[dict[str, Any], bytes]:
    """A record and the bytes it was read from (their hash is what the next one links)."""
    data = path.read_bytes()
    try:
        record = json.loads(data)
    except ValueError as exc:
        raise StoreError(f"archive record {path} is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise StoreError(f"archive record {path} is not a JSON object")
    return record, data


def head(archive: Path) -> Link:
    """The end of the chain (the record with the highest position)."""
    files = layout.chain_files(archive)
    if not files:
        return Link(None, None, None, 0)
    last = files[-1]
    record, data = read(last)
    parsed = layout.parse_digest_name(last.name)
    assert parsed is not None  # noqa: S101 - chain_files lists parsed names only
    name = last.relative_to(archive).as_posix()
    return Link(name, sha256_bytes(data), str(record.get("day")), parsed[1] + 1)


def records(archive: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every record in chain order (unverified: `archive verify` checks them)."""
    for path in layout.chain_files(archive):
        yield path, read(path)[0]


def signed(
    key: Ed25519PrivateKey,
    kind: str,
    day: date,
    fields: Mapping[str, Any],
    after: Link,
    now: datetime | None = None,
) -> tuple[str, bytes, Link]:
    """A new record after `after`, signed: (its name in the archive, its bytes, the new
    head). Nothing is written."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "seq": after.next_seq,
        "day": day.isoformat(),
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "previous": None
        if after.name is None
        else {"name": after.name, "sha256": after.sha256, "day": after.day},
        "key_fingerprint": keys.fingerprint(key.public_key()),
        **fields,
    }
    data = encode({**body, "signature": keys.sign(key, body)})
    place = layout.prune_file if kind == "prune" else layout.digest_file
    name = place(Path(), day, after.next_seq).as_posix()
    return name, data, Link(name, sha256_bytes(data), day.isoformat(), after.next_seq + 1)


def write_public_key(archive: Path, key: Ed25519PrivateKey) -> None:
    """The public key beside the chain, once (for convenience: see layout.py)."""
    public = archive / layout.PUBLIC_KEY
    if not public.exists():
        write_durably(public, keys.public_pem(key.public_key()))


def append(
    archive: Path,
    key: Ed25519PrivateKey,
    kind: str,
    day: date,
    fields: Mapping[str, Any],
    now: datetime | None = None,
) -> tuple[Path, Link]:
    """Sign a new record after the head and write it durably; call under `locked`.
    Returns the record's path and the new head."""
    write_public_key(archive, key)
    name, data, link = signed(key, kind, day, fields, head(archive), now)
    write_durably(archive / name, data)
    return archive / name, link


def encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


@contextmanager
def locked(archive: Path) -> Iterator[None]:
    """Hold the archive's lock file (an exclusive flock) for the block."""
    make_folder(archive)
    with (archive / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
