"""`secretwatch archive verify`: walk the chain and check every record and file.

Problems found (each named by file and day): a record that is not where its name says
(renamed, swapped, reordered), a missing position in the chain, a broken link to the
previous record, a bad signature, a signature by another key, a listed file missing or
changed, a file no record lists (extra), a path that leaves the archive. Files a signed
prune record removed are counted as pruned, not missing. Hashing runs on a thread pool in
8 MiB reads (hashlib releases the GIL), so verifying is bound by the disk, not one core.

What it cannot see: a tail of the chain removed together with its files (keep the head
it prints, or a copy of the archive, to compare), and events that never reached the store.
"""

from __future__ import annotations

import errno
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.archive import chain, keys, layout
from pipeline.archive.durable import sha256_bytes, sha256_file
from pipeline.errors import StoreError

_KNOWN_TOP = {
    layout.EVENTS,
    layout.ALERTS,
    layout.REPORTS,
    layout.DIGESTS,
    layout.PRUNES,
    layout.PUBLIC_KEY,
    chain.LOCK,
}


@dataclass
class Verified:
    """What was checked, and every problem met."""

    records: int = 0
    days: set[str] = field(default_factory=set)
    files: int = 0
    rows: int = 0
    bytes: int = 0
    pruned: int = 0
    head: str | None = None  # "<name> sha256 <hex>" of the last record
    fingerprint: str | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Record:
    seq: int
    day: date
    path: Path
    name: str  # relative to the archive
    data: bytes
    body: dict[str, Any] | None  # None when not JSON


def verify(
    folder: Path,
    public: Ed25519PublicKey | None = None,
    first: date | None = None,
    last: date | None = None,
    workers: int | None = None,
) -> Verified:
    """Check the chain in `folder`; file hashes only for records of days in [first, last]."""
    out = Verified()
    if not folder.is_dir():
        raise StoreError(f"archive {folder} does not exist or is not a folder")
    public = public or _archive_key(folder, out)
    out.fingerprint = keys.fingerprint(public) if public else None
    recs = _records(folder, out)
    listed, pruned = _check_chain(recs, public, out)
    _check_files(folder, recs, listed, pruned, first, last, out, workers)
    _check_extra(folder, listed, out)
    if recs:
        out.head = f"{recs[-1].name} sha256 {sha256_bytes(recs[-1].data)}"
    return out


def _archive_key(folder: Path, out: Verified) -> Ed25519PublicKey | None:
    path = folder / layout.PUBLIC_KEY
    if not path.exists():
        if layout.chain_files(folder):
            out.problems.append(
                f"no public key: {path} is missing; pass --public-key FILE (the .pub "
                "`archive keygen` wrote)"
            )
        return None
    out.notes.append(
        f"checked against the archive's own {layout.PUBLIC_KEY}; for independent evidence "
        "pass --public-key with a copy kept elsewhere and compare the fingerprint"
    )
    return keys.load_public(path)


def _records(folder: Path, out: Verified) -> list[_Record]:
    found: dict[int, list[_Record]] = {}
    for kind in (layout.DIGESTS, layout.PRUNES):
        place = folder / kind
        if not place.is_dir():
            continue
        for path in sorted(place.iterdir()):
            name = path.relative_to(folder).as_posix()
            parsed = layout.parse_digest_name(path.name)
            if parsed is None or not path.is_file():
                out.problems.append(f"extra unlisted file {name}: not a chain record name")
                continue
            data = path.read_bytes()
            body = _parse(data)
            if body is None:
                out.problems.append(f"digest {name}: not a JSON record (changed or damaged)")
            found.setdefault(parsed[1], []).append(
                _Record(parsed[1], parsed[0], path, name, data, body)
            )
    recs: list[_Record] = []
    for seq in sorted(found):
        if len(found[seq]) > 1:
            names = ", ".join(r.name for r in found[seq])
            out.problems.append(f"chain position {seq} is claimed by several records: {names}")
        recs.extend(found[seq])
    if recs:
        expected = set(range(recs[-1].seq + 1))
        for seq in sorted(expected - set(found)):
            after = max((r for r in recs if r.seq < seq), key=lambda r: r.seq, default=None)
            where = f" (after {after.name})" if after else " (the first record)"
            out.problems.append(f"missing digest at chain position {seq}{where}: deleted")
    return recs


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _check_chain(
    recs: list[_Record], public: Ed25519PublicKey | None, out: Verified
) -> tuple[dict[str, tuple[dict[str, Any], _Record]], dict[str, tuple[str, str]]]:
    """Names, positions, links and signatures; returns the listed files (path -> entry,
    record) and the pruned ones (path -> sha256, prune record)."""
    listed: dict[str, tuple[dict[str, Any], _Record]] = {}
    pruned: dict[str, tuple[str, str]] = {}
    by_seq = {r.seq: r for r in recs}
    expected_fp = keys.fingerprint(public) if public else None
    for rec in recs:
        out.records += 1
        body = rec.body
        if body is None:
            continue
        day = body.get("day")
        if body.get("seq") != rec.seq or day != rec.day.isoformat():
            out.problems.append(
                f"digest {rec.name} holds day {day}, position {body.get('seq')}: renamed, "
                "swapped or reordered"
            )
        _check_link(rec, body, by_seq.get(rec.seq - 1), out)
        _check_signature(rec, body, public, expected_fp, out)
        if body.get("kind") == "day":
            out.days.add(str(day))
        for entry in body.get("files") or []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                listed[entry["path"]] = (entry, rec)
        for entry in body.get("removed") or []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                pruned[entry["path"]] = (str(entry.get("sha256")), rec.name)
    for path, (sha, prune) in pruned.items():
        held = listed.get(path)
        if held is None or held[0].get("sha256") != sha:
            out.problems.append(
                f"prune record {prune} removes {path}, which no digest lists with that hash"
            )
    return listed, pruned


def _check_link(rec: _Record, body: dict[str, Any], prev: _Record | None, out: Verified) -> None:
    link = body.get("previous")
    if rec.seq == 0:
        if link is not None:
            out.problems.append(f"digest {rec.name} is first in the chain but links a previous")
        return
    if not isinstance(link, dict):
        out.problems.append(f"digest {rec.name} has no link to the previous record")
        return
    if prev is None:
        out.problems.append(
            f"broken link: digest {rec.name} (day {rec.day}) links {link.get('name')} "
            f"(day {link.get('day')}), which is missing"
        )
        return
    if link.get("name") != prev.name or link.get("sha256") != sha256_bytes(prev.data):
        out.problems.append(
            f"broken link: digest {rec.name} (day {rec.day}) links {link.get('name')} "
            f"(day {link.get('day')}) with another hash than {prev.name} has: a record was "
            "changed, replaced or reordered"
        )


def _check_signature(
    rec: _Record,
    body: dict[str, Any],
    public: Ed25519PublicKey | None,
    expected_fp: str | None,
    out: Verified,
) -> None:
    if public is None:
        return
    signed = {k: v for k, v in body.items() if k != "signature"}
    signature = body.get("signature")
    if body.get("key_fingerprint") != expected_fp:
        out.problems.append(
            f"wrong key: digest {rec.name} (day {rec.day}) names key "
            f"{str(body.get('key_fingerprint'))[:16]}…, not the expected {str(expected_fp)[:16]}…"
        )
    elif not isinstance(signature, str) or not keys.good(public, signed, signature):
        out.problems.append(
            f"bad signature: digest {rec.name} (day {rec.day}) was changed after signing "
            "or signed by another key"
        )


def _check_files(
    folder: Path,
    recs: list[_Record],
    listed: dict[str, tuple[dict[str, Any], _Record]],
    pruned: dict[str, tuple[str, str]],
    first: date | None,
    last: date | None,
    out: Verified,
    workers: int | None,
) -> None:
    """Hash every listed file of the chosen days (strings, not Path objects: an archive
    holds thousands of files and the per-file overhead shows)."""
    root = str(folder)
    todo: list[tuple[str, dict[str, Any], _Record]] = []
    for relative, (entry, rec) in listed.items():
        if (first and rec.day < first) or (last and rec.day > last):
            continue
        if not layout.plain_relative(relative):
            out.problems.append(f"digest {rec.name} lists {relative}, outside the archive: refused")
            continue
        if not os.path.lexists(os.path.join(root, relative)):
            if relative in pruned:
                out.pruned += 1
            else:
                out.problems.append(
                    f"missing file {relative} (day {rec.day}, listed in {rec.name})"
                )
            continue
        todo.append((relative, entry, rec))
    threads = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        hashes = list(pool.map(lambda item: _hash(root, item[0]), todo, chunksize=16))
    for (relative, entry, rec), found in zip(todo, hashes, strict=True):
        if found is None:
            out.problems.append(f"file {relative} (day {rec.day}) is a symbolic link: refused")
            continue
        sha, size = found
        if sha != entry.get("sha256"):
            out.problems.append(
                f"changed file {relative} (day {rec.day}): sha256 {sha[:16]}…, "
                f"digest {rec.name} lists {str(entry.get('sha256'))[:16]}…"
            )
            continue
        out.files += 1
        out.bytes += size
        out.rows += int(entry.get("rows") or 0) if entry.get("kind") == "events" else 0


def _hash(root: str, relative: str) -> tuple[str, int] | None:
    """(sha256, size) of a file, None if it is a symbolic link (never followed)."""
    try:
        return sha256_file(os.path.join(root, relative), follow=False)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise


def _check_extra(
    folder: Path, listed: dict[str, tuple[dict[str, Any], _Record]], out: Verified
) -> None:
    """Every file under the archive's folders must be listed; links are refused."""
    for top in sorted(folder.iterdir()):
        if top.name not in _KNOWN_TOP:
            out.problems.append(f"extra unlisted file {top.name}: not part of an archive")
    root = str(folder)
    for kind in (layout.EVENTS, layout.ALERTS, layout.REPORTS):
        for place, dirs, files in os.walk(os.path.join(root, kind)):
            base = os.path.relpath(place, root)
            for name in sorted(dirs):
                if os.path.islink(os.path.join(place, name)):
                    out.problems.append(f"{base}/{name} is a symbolic link: refused")
            for name in sorted(files):
                relative = f"{base}/{name}"
                if os.path.islink(os.path.join(place, name)) and relative not in listed:
                    out.problems.append(f"{relative} is a symbolic link: refused")
                elif relative not in listed:
                    why = (
                        "left by an interrupted run"
                        if relative.endswith(layout.TMP_SUFFIX)
                        else "no digest lists it"
                    )
                    out.problems.append(f"extra unlisted file {relative}: {why}")
