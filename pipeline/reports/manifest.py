"""The manifest: SHA-256 of every output file, of the parameters the report was asked
for, and of the store state it read, so a reviewer can show the evidence was not altered
and anyone can rebuild it and compare.

"Store state" is what the report actually consumed: the aggregates the store returned
(normalized, then hashed column by column: `export.digest`), the stored event count, and
which store it was with that store's own schema version. Two stores holding the same
events give the same aggregate hashes and event count, whichever kind they are; the state
hash over all of it differs between kinds, since it also covers the store's name and
schema version (tests/reports/test_report_elasticsearch.py compares a DuckDB and an
Elasticsearch report).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson
import pandas as pd

from pipeline.reports.export import digest

NAME = "manifest.json"
FORMAT = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value: object) -> bytes:
    """Stable JSON bytes (sorted keys) for hashing."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def store_state(
    frames: Mapping[str, pd.DataFrame], events_total: int, schema_version: int, kind: str
) -> dict[str, object]:
    inputs = {name: digest(frame) for name, frame in sorted(frames.items())}
    state: dict[str, object] = {
        "store": kind,
        "schema_version": schema_version,
        "events_total": events_total,
        "aggregates_sha256": inputs,
    }
    state["sha256"] = sha256(canonical(state))
    return state


def write(
    folder: Path, files: Iterable[Path], parameters: dict[str, object], state: dict[str, object]
) -> Path:
    """`manifest.json` listing every output (relative path, bytes, SHA-256)."""
    entries = []
    for path in sorted(files, key=lambda p: p.relative_to(folder).as_posix()):
        data = path.read_bytes()
        rel = path.relative_to(folder).as_posix()
        entries.append({"path": rel, "bytes": len(data), "sha256": sha256(data)})
    body = {
        "format": FORMAT,
        "parameters": parameters,
        "parameters_sha256": sha256(canonical(parameters)),
        "store_state": state,
        "files": entries,
    }
    target = folder / NAME
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    target.write_bytes(orjson.dumps(body, option=options) + b"\n")
    return target


def listed(folder: Path) -> list[str]:
    """Relative paths the folder's manifest lists (empty without a manifest)."""
    path = folder / NAME
    if not path.exists():
        return []
    return [entry["path"] for entry in orjson.loads(path.read_bytes()).get("files", [])]


def verify(folder: Path) -> list[str]:
    """Problems found re-hashing a report folder against its manifest (none: intact).

    Files changed, missing, or present but not listed are all reported, as is a
    manifest whose parameter hash no longer matches its parameters."""
    path = folder / NAME
    if not path.exists():
        return [f"{path} is missing"]
    try:
        body = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        return [f"{path} is not valid JSON: {exc}"]
    problems = []
    if sha256(canonical(body.get("parameters"))) != body.get("parameters_sha256"):
        problems.append("parameters do not match parameters_sha256")
    state = dict(body.get("store_state") or {})
    claimed = state.pop("sha256", None)
    if sha256(canonical(state)) != claimed:
        problems.append("store_state does not match its sha256")
    names = set()
    for entry in body.get("files", []):
        names.add(entry["path"])
        target = folder / entry["path"]
        if not target.is_file():
            problems.append(f"{entry['path']}: missing")
        elif sha256(target.read_bytes()) != entry["sha256"]:
            problems.append(f"{entry['path']}: SHA-256 differs from the manifest")
    for extra in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = extra.relative_to(folder).as_posix()
        if rel != NAME and rel not in names:
            problems.append(f"{rel}: not in the manifest")
    return problems
