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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath

import orjson
import pandas as pd

from pipeline.errors import InputError
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
    folder: Path,
    files: Iterable[Path],
    parameters: dict[str, object],
    state: dict[str, object],
    archive: dict[str, object] | None = None,
) -> Path:
    """`manifest.json` listing every output (relative path, bytes, SHA-256), and the
    archive digests the period's events rest on, if any (pipeline/reports/archived.py)."""
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
    if archive is not None:
        body["archive"] = archive
    target = folder / NAME
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    target.write_bytes(orjson.dumps(body, option=options) + b"\n")
    return target


def inside(folder: Path, rel: object, manifest: Path) -> Path:
    """`folder / rel` for a path `manifest` lists, once it is known to stay inside `folder`:
    relative, without `..`, and not led outside by a symbolic link (the resolved path is
    under the resolved folder). Anything else raises InputError naming the manifest, the
    entry and the fix, so no caller deletes or reads outside the folder.

    >>> inside(Path("r"), "csv/a.csv", Path("r/manifest.json")).as_posix()
    'r/csv/a.csv'
    >>> inside(Path("r"), "../x", Path("r/manifest.json"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    pipeline.errors.InputError: r/manifest.json lists '../x', which climbs out of the ...
    """
    why = _outside(folder, rel)
    if why is not None:
        raise InputError(
            f"{manifest} lists {rel!r}, which {why}; a report's manifest only lists files "
            f"inside its own folder ({folder}), so this one was altered or is not "
            "secretwatch's. Nothing was deleted or read: restore the manifest from a trusted "
            "copy, or choose another folder (another --out)"
        )
    return folder / str(rel)


def _outside(folder: Path, rel: object) -> str | None:
    """Why `rel` does not name a file inside `folder` (None: it does)."""
    if not isinstance(rel, str) or not rel.strip():
        return "is not a file path"
    if "\x00" in rel:
        return "holds a NUL byte"
    if PurePosixPath(rel).is_absolute():
        return "is an absolute path, outside the folder"
    if ".." in PurePosixPath(rel).parts:
        return "climbs out of the folder with '..'"
    root = folder.resolve()
    try:
        resolved = (folder / rel).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        return f"cannot be resolved ({exc})"
    if resolved == root:
        return "names the folder itself, not a file in it"
    if not resolved.is_relative_to(root):
        return f"leads outside the folder through a symbolic link (to {resolved})"
    return None


def _entries(folder: Path, body: object, path: Path) -> list[dict[str, object]]:
    """The manifest's file entries, each path checked by `inside` before any is used."""
    files = body.get("files", []) if isinstance(body, dict) else None
    if not isinstance(files, list) or not all(isinstance(e, dict) for e in files):
        raise InputError(
            f"{path} has no list of file entries; it is not a secretwatch manifest: "
            "restore it from a trusted copy, or choose another folder (another --out)"
        )
    for entry in files:
        inside(folder, entry.get("path"), path)
    return files


def _manifest_path(folder: Path) -> Path:
    path = folder / NAME
    if path.is_symlink():
        inside(folder, NAME, path)  # a manifest linked from inside the folder is fine
    return path


def listed(folder: Path) -> list[str]:
    """Relative paths the folder's manifest lists (empty without a manifest), each checked
    to stay inside the folder (`inside`)."""
    path = _manifest_path(folder)
    if not path.exists():
        return []
    try:
        body = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not valid JSON ({exc}); remove it if the folder holds no report, "
            "or choose another folder (another --out)"
        ) from None
    return [str(entry["path"]) for entry in _entries(folder, body, path)]


def verify(folder: Path, archive: Callable[[], Path | None] | None = None) -> list[str]:
    """Problems found re-hashing a report folder against its manifest (none: intact).

    Files changed, missing, or present but not listed are all reported, as is a
    manifest whose parameter hash no longer matches its parameters. A manifest listing a
    path outside the folder raises InputError before any file is read. A manifest that
    rests on archive digests has them re-verified in the archive `archive()` names (asked
    only then: pipeline/reports/archived.py)."""
    path = _manifest_path(folder)
    if not path.exists():
        return [f"{path} is missing"]
    try:
        body = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        return [f"{path} is not valid JSON: {exc}"]
    files = _entries(folder, body, path)
    problems = []
    if sha256(canonical(body.get("parameters"))) != body.get("parameters_sha256"):
        problems.append("parameters do not match parameters_sha256")
    state = dict(body.get("store_state") or {})
    claimed = state.pop("sha256", None)
    if sha256(canonical(state)) != claimed:
        problems.append("store_state does not match its sha256")
    names = set()
    for entry in files:
        rel = str(entry["path"])
        names.add(rel)
        target = folder / rel
        if not target.is_file():
            problems.append(f"{rel}: missing")
        elif sha256(target.read_bytes()) != entry.get("sha256"):
            problems.append(f"{rel}: SHA-256 differs from the manifest")
    for extra in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = extra.relative_to(folder).as_posix()
        if rel != NAME and rel not in names:
            problems.append(f"{rel}: not in the manifest")
    if "archive" in body:
        from pipeline.reports import archived

        problems += archived.check(archive() if archive else None, body["archive"])
    return problems
