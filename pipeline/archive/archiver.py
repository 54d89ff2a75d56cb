"""`secretwatch archive`: move whole UTC days of events out of the hot store into Parquet.

Per day, for each source: the hot events are read (sorted by time), the ones not yet
archived are written to a new part file (zstd Parquet, written under a temporary name,
fsynced, renamed, folder fsynced); then the day's alerts; then the day's digest is signed
and written durably; only then are the day's hot rows dropped, per source in one
transaction that checks the count. A crash at any step leaves every event in the hot
store, in the archive, or (between digest and drop) in both; the next run removes what an
interrupted one left unlisted (temporary files, parts without a digest), recognizes hot
events already archived by their ids (after checking the part against its digest) and
only drops them. Re-running is idempotent.

Test hook: `SECRETWATCH_ARCHIVE_CRASH_AFTER=parquet|digest|delete` makes the process
SIGKILL itself right after the first part file is in place, after the first digest is
written, or after the first per-source drop has committed (tests/archive kill it there).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.archive import chain, layout
from pipeline.archive.durable import sha256_bytes, sha256_file, write_durably
from pipeline.archive.source import ArchiveSource
from pipeline.errors import StoreError
from pipeline.store.base import Outbox

CRASH_ENV = "SECRETWATCH_ARCHIVE_CRASH_AFTER"
CRASH_STEPS = ("parquet", "digest", "delete")
ROW_GROUP = 262_144  # rows per Parquet row group: big enough to compress, small to skip
_DAY = timedelta(days=1)


@dataclass
class ArchiveRun:
    """What one run did, for the command's summary."""

    days: int = 0
    files: int = 0
    events: int = 0  # written to new part files
    dropped: int = 0  # hot rows dropped (written now, or archived by an interrupted run)
    bytes: int = 0
    alerts: int = 0
    removed: list[str] = field(default_factory=list)  # left unlisted by an interrupted run


DayDone = Callable[[date, int, int], None]  # (day, events written, hot rows dropped)


def crash_point(step: str) -> None:
    """The test hook: die here, as kill -9 would, when $SECRETWATCH_ARCHIVE_CRASH_AFTER
    names this step."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def archive(
    source: ArchiveSource,
    alerts: Outbox | None,
    folder: Path,
    key: Ed25519PrivateKey,
    before: datetime,
    on_day: DayDone | None = None,
    stopping: Callable[[], bool] | None = None,
) -> ArchiveRun:
    """Archive every whole UTC day before `before` that still has hot events; `stopping`
    is asked between days (a service shutting down ends the run there)."""
    run = ArchiveRun()
    with chain.locked(folder):
        listed = recover(folder, run)
        days = source.archivable_days(before)
        for day, group in itertools.groupby(days, key=lambda d: d[0]):
            if stopping is not None and stopping():
                break
            sources = [s for _, s, _ in group]
            written, dropped = _archive_day(source, alerts, folder, key, day, sources, listed, run)
            run.days += 1
            if on_day is not None:
                on_day(day, written, dropped)
    return run


def _archive_day(
    source: ArchiveSource,
    alerts: Outbox | None,
    folder: Path,
    key: Ed25519PrivateKey,
    day: date,
    sources: list[str],
    listed: dict[str, dict[str, Any]],
    run: ArchiveRun,
) -> tuple[int, int]:
    entries: list[dict[str, Any]] = []
    drops: list[tuple[str, int]] = []
    for name in sources:
        table = source.day_events(day, name)
        drops.append((name, table.num_rows))
        parts = _parts(listed, day, name)
        if parts:
            done = _archived_ids(folder, parts)
            table = table.filter(pc.invert(pc.is_in(table["event_id"], value_set=done)))
        if table.num_rows:
            entries.append(_write_events(folder, day, name, len(parts), table))
            crash_point("parquet")
    if entries and alerts is not None:
        entry = _write_alerts(folder, day, alerts, listed)
        if entry is not None:
            entries.append(entry)
            run.alerts += int(entry["rows"])
    if entries:
        chain.append(folder, key, "day", day, {"files": entries})
        for entry in entries:
            listed[entry["path"]] = entry
        crash_point("digest")
    written = sum(int(e["rows"]) for e in entries if e["kind"] == "events")
    run.files += len(entries)
    run.events += written
    run.bytes += sum(int(e["bytes"]) for e in entries)
    dropped = 0
    for name, hot in drops:
        dropped += source.drop_day(day, name, hot) if hot else 0
        crash_point("delete")
    run.dropped += dropped
    return written, dropped


def listed_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file the chain's records list, by path relative to the archive."""
    return {
        entry["path"]: entry
        for _, record in chain.records(folder)
        for entry in record.get("files", [])
        if isinstance(entry, dict) and isinstance(entry.get("path"), str)
    }


def recover(folder: Path, run: ArchiveRun) -> dict[str, dict[str, Any]]:
    """Remove what an interrupted run left: temporary files, and event or alert parts or
    report manifests no record lists (written before the crash: their events are still
    hot, the manifest still in its report folder). Returns the listed files."""
    for kind in (layout.EVENTS, layout.ALERTS, layout.DIGESTS, layout.PRUNES, layout.REPORTS):
        for tmp in (folder / kind).rglob("*" + layout.TMP_SUFFIX):
            tmp.unlink()
            run.removed.append(tmp.relative_to(folder).as_posix())
    listed = listed_files(folder)
    for kind in (layout.EVENTS, layout.ALERTS, layout.REPORTS):
        for path in (folder / kind).rglob("*.*"):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and name not in listed:
                path.unlink()
                run.removed.append(name)
    return listed


def _parts(listed: dict[str, dict[str, Any]], day: date, source: str) -> list[dict[str, Any]]:
    prefix = layout.event_file(Path(), day, source, 0).as_posix().removesuffix("0.parquet")
    return [e for path, e in listed.items() if path.startswith(prefix)]


def _archived_ids(folder: Path, parts: list[dict[str, Any]]) -> pa.Array:
    """The event ids in a day's archived parts, each checked against its digest first."""
    ids = []
    for entry in parts:
        path = layout.inside(folder, entry["path"])
        if path is None:
            raise StoreError(f"a digest in {folder} lists {entry['path']!r}: outside, refused")
        if not path.exists():  # pruned: nothing of it can be hot again
            continue
        if sha256_file(path)[0] != entry["sha256"]:
            raise StoreError(
                f"archived file {path} does not match its digest; nothing of its day was "
                "dropped. Run `secretwatch archive verify` and restore it from a copy"
            )
        ids.append(pq.read_table(path, columns=["event_id"])["event_id"])
    return pa.chunked_array(itertools.chain.from_iterable(c.chunks for c in ids), pa.string())


def _write_events(
    folder: Path, day: date, source: str, part: int, table: pa.Table
) -> dict[str, Any]:
    path = layout.event_file(folder, day, source, part)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP)
    data = memoryview(sink.getvalue())
    write_durably(path, data)
    ts = table["ts"]
    return {
        "path": path.relative_to(folder).as_posix(),
        "kind": "events",
        "source": source,
        "sha256": sha256_bytes(data),
        "bytes": len(data),
        "rows": table.num_rows,
        "first_ts": ts[0].as_py().isoformat(),
        "last_ts": ts[-1].as_py().isoformat(),
    }


def _write_alerts(
    folder: Path, day: date, alerts: Outbox, listed: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The day's alerts (by alert time) not yet archived at their current revision, as
    JSON lines; None when there are none."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    frame = alerts.alerts(since=start, until=start + _DAY)
    if frame.empty:
        return None
    prefix = layout.alerts_file(Path(), day, 0).as_posix().removesuffix("0.jsonl")
    parts = [e for path, e in listed.items() if path.startswith(prefix)]
    seen: set[tuple[str, int]] = set()
    for entry in parts:
        path = layout.inside(folder, entry["path"])
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                kept = json.loads(line)
                seen.add((kept["id"], int(kept["revision"])))
    keys = zip(frame["id"], frame["revision"], strict=True)
    fresh = frame[[(i, int(r)) not in seen for i, r in keys]]
    if fresh.empty:
        return None
    text = fresh.to_json(orient="records", lines=True, date_format="iso", date_unit="us")
    data = text.encode() if text.endswith("\n") else (text + "\n").encode()
    path = layout.alerts_file(folder, day, len(parts))
    write_durably(path, data)
    stamps = fresh["ts"]
    return {
        "path": path.relative_to(folder).as_posix(),
        "kind": "alerts",
        "sha256": sha256_bytes(data),
        "bytes": len(data),
        "rows": len(fresh),
        "first_ts": stamps.min().isoformat(),
        "last_ts": stamps.max().isoformat(),
    }
