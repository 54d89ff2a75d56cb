"""`secretwatch archive`: move whole UTC days of events out of the hot store into Parquet.

Per day, for each source: the hot events are read (sorted by time), the ones not yet
archived are written to a new part file (zstd Parquet, under a temporary name, renamed,
then made durable); then the day's alerts; then the day's digest is signed and made
durable; only then are the day's hot rows dropped, in a transaction that checks the
count. A crash at any step leaves every event in the hot store, in the archive, or
(between digest and drop) in both; the next run removes what an interrupted one left
unlisted (temporary files, parts without a digest), recognizes hot events already
archived by their ids (after checking the part against its digest) and only drops them.
Re-running is idempotent.

Days go in batches of about 500,000 events, because an fsync or a transaction costs
milliseconds, as much as a quiet day's rows: the batch's parts are encoded on a small
thread pool (pyarrow releases the GIL) and made durable by one `syncfs`; the digests are
staged, synced, and renamed into the chain in day order, then synced; then the batch's
hot rows are dropped, in one transaction where the store offers `drop_days`
(`BatchDrop`), else per day and source. The next batch is read from the store while the
pool still encodes the one before.

Test hook: `SECRETWATCH_ARCHIVE_CRASH_AFTER=parquet|digest|mid-delete|delete` makes the
process SIGKILL itself right after the first batch's part files are in place, after the
first digest is written, inside the drop transaction before it commits, or after the first
drop has committed (tests/archive/test_crash.py kills it at each);
`SECRETWATCH_ARCHIVE_BATCH_ROWS` makes batches smaller, so a crash falls mid-run.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.archive import chain, durable, layout
from pipeline.archive.durable import sha256_bytes, sha256_file
from pipeline.archive.source import ArchiveSource, BatchDrop
from pipeline.errors import StoreError
from pipeline.store.base import Outbox

CRASH_ENV = "SECRETWATCH_ARCHIVE_CRASH_AFTER"
CRASH_STEPS = ("parquet", "digest", "mid-delete", "delete")
ROW_GROUP = 262_144  # rows per Parquet row group: big enough to compress, small to skip
_UNIQUE = ("ts", "event_id", "request_id")  # a dictionary of unique values only costs
WRITERS = 2  # threads encoding and writing Parquet while the next part is read
BATCH_ROWS = 500_000  # hot events per batch: written, digested, then dropped together (two
# batches are in flight: one read while the one before is encoded)
BATCH_ENV = "SECRETWATCH_ARCHIVE_BATCH_ROWS"  # test hook: smaller batches


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


@dataclass
class _Context:
    """What every day of one run shares."""

    source: ArchiveSource
    folder: Path
    key: Ed25519PrivateKey
    parts: dict[str, list[dict[str, Any]]]  # listed files by `_prefix` (day, kind, source)
    link: chain.Link  # the head of the chain
    alerts: dict[date, pd.DataFrame]  # the run's alerts by UTC day
    pool: ThreadPoolExecutor  # Parquet encoding and writing (pyarrow releases the GIL)
    run: ArchiveRun


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
    with chain.locked(folder), ThreadPoolExecutor(WRITERS) as pool:
        listed = recover(folder, run)
        days = source.archivable_days(before)
        by_day = _alerts_by_day(alerts, days[0][0], before) if days and alerts else {}
        parts = _by_prefix(listed.values())
        ctx = _Context(source, folder, key, parts, chain.head(folder), by_day, pool, run)
        batch_rows = int(os.environ.get(BATCH_ENV) or BATCH_ROWS)
        pending: list[_Plan] = []
        for batch in _batches(days, batch_rows):
            if stopping is not None and stopping():
                break
            plans = _start_batch(ctx, batch)  # read while the pool encodes the batch before
            _report(run, _finish_batch(ctx, pending), on_day)
            pending = plans
        _report(run, _finish_batch(ctx, pending), on_day)
    return run


def _report(run: ArchiveRun, done: list[tuple[date, int, int]], on_day: DayDone | None) -> None:
    for day, written, dropped in done:
        run.days += 1
        if on_day is not None:
            on_day(day, written, dropped)


def _batches(
    days: list[tuple[date, str, int]], rows: int
) -> Iterator[list[tuple[date, list[str]]]]:
    """Consecutive days, each with its sources, in batches of about `rows` hot events."""
    batch: list[tuple[date, list[str]]] = []
    held = 0
    for day, group in itertools.groupby(days, key=lambda d: d[0]):
        units = list(group)
        count = sum(n for _, _, n in units)
        if batch and held + count > rows:
            yield batch
            batch, held = [], 0
        batch.append((day, [s for _, s, _ in units]))
        held += count
    if batch:
        yield batch


# One day of a batch: its parts being encoded on the pool, and its hot rows per source.
_Plan = tuple[date, list[Future[dict[str, Any]]], list[tuple[str, int]]]


def _start_batch(ctx: _Context, batch: list[tuple[date, list[str]]]) -> list[_Plan]:
    """Read the batch's days and hand their new parts to the pool to encode and stage."""
    plans: list[_Plan] = []
    for day, sources in batch:
        writing: list[Future[dict[str, Any]]] = []
        drops: list[tuple[str, int]] = []
        for name in sources:
            table = ctx.source.day_events(day, name)
            drops.append((name, table.num_rows))
            parts = ctx.parts.get(_prefix(layout.event_file(Path(), day, name, 0).as_posix()), [])
            if parts:
                done = _archived_ids(ctx.folder, parts)
                table = table.filter(pc.invert(pc.is_in(table["event_id"], value_set=done)))
            if table.num_rows:
                part = len(parts)
                writing.append(ctx.pool.submit(_write_events, ctx.folder, day, name, part, table))
        plans.append((day, writing, drops))
    return plans


def _finish_batch(ctx: _Context, plans: list[_Plan]) -> list[tuple[date, int, int]]:
    """Once the batch's parts are staged: publish and sync them, write each day's digest
    in day order, then drop the batch's hot rows; (day, written, dropped) per day."""
    files = [(day, [w.result() for w in writing]) for day, writing, _ in plans]
    for day, entries in files:
        frame = ctx.alerts.get(day)
        alerts = _write_alerts(ctx.folder, day, frame, ctx.parts) if frame is not None else None
        if alerts is not None:  # new alerts, or new revisions of archived ones
            entries.append(alerts)
    written = [e for _, entries in files for e in entries]
    if written:
        durable.publish([ctx.folder / e["path"] for e in written])
        durable.sync_filesystem(ctx.folder)
        crash_point("parquet")
        _digest(ctx, [(day, entries) for day, entries in files if entries])
    hot_units = [(day, name, hot) for day, _, held in plans for name, hot in held if hot]
    dropped = _drop(ctx.source, hot_units)
    ctx.run.dropped += sum(dropped.values())
    return [
        (day, sum(int(e["rows"]) for e in entries if e["kind"] == "events"), dropped.get(day, 0))
        for day, entries in files
    ]


def _digest(ctx: _Context, days: list[tuple[date, list[dict[str, Any]]]]) -> None:
    """Sign each day's digest in day order, stage them all, make them durable, then
    rename them into the chain in order (a crash leaves a prefix of them)."""
    chain.write_public_key(ctx.folder, ctx.key)
    names: list[Path] = []
    for day, entries in days:
        name, data, ctx.link = chain.signed(ctx.key, "day", day, {"files": entries}, ctx.link)
        names.append(ctx.folder / name)
        durable.write_staged(names[-1], data)
        for entry in entries:
            ctx.parts.setdefault(_prefix(entry["path"]), []).append(entry)
        ctx.run.files += len(entries)
        ctx.run.events += sum(int(e["rows"]) for e in entries if e["kind"] == "events")
        ctx.run.alerts += sum(int(e["rows"]) for e in entries if e["kind"] == "alerts")
        ctx.run.bytes += sum(int(e["bytes"]) for e in entries)
    durable.sync_filesystem(ctx.folder)
    durable.publish(names[:1])
    crash_point("digest")
    durable.publish(names[1:])
    durable.sync_filesystem(ctx.folder)


def _drop(source: ArchiveSource, drops: list[tuple[date, str, int]]) -> dict[date, int]:
    """Drop the archived hot rows: in one transaction where the store can (`BatchDrop`),
    else per day and source; hot rows dropped per day."""
    per_day: dict[date, int] = {}
    if not drops:
        return per_day
    if isinstance(source, BatchDrop):
        source.drop_days(drops, before_commit=lambda: crash_point("mid-delete"))
        for day, _, hot in drops:
            per_day[day] = per_day.get(day, 0) + hot
        crash_point("delete")
        return per_day
    for day, name, hot in drops:
        per_day[day] = per_day.get(day, 0) + source.drop_day(day, name, hot)
        crash_point("delete")
    return per_day


def _alerts_by_day(alerts: Outbox, first: date, before: datetime) -> dict[date, pd.DataFrame]:
    """The alerts of the run's days in one read, split by UTC day of their time."""
    frame = alerts.alerts(since=datetime.combine(first, datetime.min.time(), UTC), until=before)
    if frame.empty:
        return {}
    days = frame["ts"].dt.tz_convert("UTC").dt.date
    return {day: group for day, group in frame.groupby(days)}


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


def _prefix(path: str) -> str:
    """A part's name without its part number and suffix: its day, kind and source.

    >>> _prefix("events/2024/03/2024-03-01.vault.0.parquet"), _prefix("alerts/x/2024-03-01.2.jsonl")
    ('events/2024/03/2024-03-01.vault.', 'alerts/x/2024-03-01.')
    """
    return path.rsplit(".", 2)[0] + "."


def _by_prefix(entries: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        index.setdefault(_prefix(entry["path"]), []).append(entry)
    return index


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
    """Encode and stage one part (on a pool thread); the caller publishes it."""
    path = layout.event_file(folder, day, source, part)
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=ROW_GROUP,
        use_dictionary=[c for c in table.column_names if c not in _UNIQUE],
        column_encoding={"ts": "DELTA_BINARY_PACKED"},  # sorted times: small deltas
    )
    data = memoryview(sink.getvalue())
    durable.write_staged(path, data)
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
    folder: Path, day: date, frame: pd.DataFrame, index: dict[str, list[dict[str, Any]]]
) -> dict[str, Any] | None:
    """The day's alerts (by alert time) not yet archived at their current revision, as
    JSON lines; None when there are none."""
    parts = index.get(_prefix(layout.alerts_file(Path(), day, 0).as_posix()), [])
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
    durable.write_staged(path, data)
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
