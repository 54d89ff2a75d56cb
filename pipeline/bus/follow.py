"""Follow audit files like `tail -F`: read as they grow, across rotation and truncation,
and resume after a restart from the offset stored with the last batch.

The checkpoint is written in the same store transaction as the events it covers, and it
points at the oldest record not yet turned into a stored event (a Vault request still
waiting for its response), so a killed process re-reads at most a few records, which the
store's idempotency absorbs: no gap, no duplicate.

Rotation by rename keeps the inode, so on restart a checkpoint whose inode no longer sits
at the path is looked for among the file's siblings and finished first.

Rotation by copytruncate (logrotate copies the file to a sibling, then truncates it in
place) is noticed by the file's size falling below what was read or by its first bytes
changing; the rest is read from the copy (a sibling starting with the same bytes) before
the truncated file is read from its start. Across either rotation the parser keeps its
waiting requests, so a request written before it pairs with its response written after,
and the checkpoint stays in the file left behind while one of its requests still waits.
What cannot be read again (no copy beside the file, or lines written between logrotate's
copy and its truncation) is logged as a warning with the bytes at stake.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.text import Text

from pipeline.bus.followed import Followed
from pipeline.bus.rotation import (
    FINGERPRINT_BYTES,
    find_copy,
    find_inode,
    fingerprint_of,
    open_sibling,
    open_unbuffered,
    same_file,
)
from pipeline.config import Config
from pipeline.errors import InputError
from pipeline.ingest import IngestSummary
from pipeline.paths import not_a_folder
from pipeline.record import EventRow
from pipeline.redact import redact_raw
from pipeline.sources import new_parser
from pipeline.sources.base import DeadLetter, FeedResult, Parser, Record
from pipeline.sources.formats import RecognizingParser
from pipeline.sources.framing import split_lines
from pipeline.store.base import Checkpoint, EventLog
from pipeline.terminal import inert
from pipeline.timewindow import quarantine

log = logging.getLogger(__name__)

READ_BYTES = 4 << 20
# A poll reads on while the file holds more, up to this many events in one stored batch:
# behind, a follower stores fewer, larger batches (each store transaction costs a WAL fsync,
# ~10 ms here, and per-batch work); caught up, a batch is what arrived since the last poll.
BATCH_EVENTS = 20_000
IDLE_FLUSH_SECONDS = (
    5.0  # a Vault request unanswered this long after the file went quiet counts alone
)


def follow_files(
    paths: list[str],
    store: EventLog,
    config: Config,
    fmt: str | None = None,
    console: Console | None = None,
    stop: threading.Event | None = None,
    on_stored: Callable[[list[EventRow]], None] | None = None,
    before_store: Callable[[list[EventRow]], None] | None = None,
) -> IngestSummary:
    """Follow `paths` until `stop` is set (or Ctrl-C / SIGTERM); return what was ingested.
    `on_stored` gets each batch once it is stored with its checkpoint (live detection),
    `before_store` before (live detection notes where it began: `store_batch`)."""
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
    summary = IngestSummary()
    files: list[Followed] = []
    try:
        for p in paths:
            files.append(
                open_followed(Path(p), store.checkpoint, fmt, config.backends, summary, console)
            )
        _loop(files, store, config, summary, stop, on_stored, before_store)
    finally:
        for followed in files:
            if followed.handle:
                followed.handle.close()
    return summary


def _loop(
    files: list[Followed],
    store: EventLog,
    config: Config,
    summary: IngestSummary,
    stop: threading.Event,
    on_stored: Callable[[list[EventRow]], None] | None = None,
    before_store: Callable[[list[EventRow]], None] | None = None,
) -> None:
    poll = config.ingest.follow_poll_seconds
    try:
        while not stop.is_set():
            grew = False
            for followed in files:
                grew = step(followed, store, config, summary, on_stored, before_store) or grew
            if not grew:
                stop.wait(poll)
    except KeyboardInterrupt:
        pass


def step(
    f: Followed,
    store: EventLog,
    config: Config,
    summary: IngestSummary,
    on_stored: Callable[[list[EventRow]], None] | None = None,
    before_store: Callable[[list[EventRow]], None] | None = None,
) -> bool:
    """One poll of one file, its batch stored with its checkpoint in one transaction; True
    if anything was read (tests drive a follower with this, one poll at a time)."""
    batch = read_batch(f, config, summary)
    if batch is None:
        return False
    store_batch(batch, store, summary, on_stored, before_store)
    return bool(batch.result.accounted or batch.result.rows)


@dataclass
class Batch:
    """What one poll read from a followed file, and the checkpoint to store it with."""

    result: FeedResult
    checkpoint: Checkpoint


def read_batch(f: Followed, config: Config, summary: IngestSummary) -> Batch | None:
    """Poll `f` (reading on while it holds more, up to `BATCH_EVENTS` events), quarantine
    implausible times and count it all in `summary`; None when nothing was new."""
    result = poll_followed(f, summary, config)
    if not (result.rows or result.dead or result.accounted):
        return None
    while len(result.rows) < BATCH_EVENTS and _more_waiting(f):
        more = poll_followed(f, summary, config)
        if not (more.rows or more.dead or more.accounted):
            break
        result.extend(more)
    now_us = int(time.time() * 1_000_000)
    quarantine(result, f.reading or str(f.path), f.fmt, config.ingest.time_window, now_us)
    summary.add(result)
    return Batch(result, f.checkpoint())


def store_batch(
    batch: Batch,
    store: EventLog,
    summary: IngestSummary,
    on_stored: Callable[[list[EventRow]], None] | None = None,
    before_store: Callable[[list[EventRow]], None] | None = None,
) -> int:
    """Store a batch with its checkpoint in one transaction, then hand its rows on; return
    how many events were new. `before_store` sees the rows first: live detection that has
    judged nothing yet notes where it begins, or a kill before it judged them would leave
    them stored, their checkpoint passed, and never judged."""
    rows = batch.result.rows
    if before_store is not None and rows:
        before_store(rows)
    stored = store.write_batch(rows, batch.result.dead, [batch.checkpoint])
    summary.stored += stored
    if on_stored is not None and rows:
        on_stored(rows)
    return stored


def _more_waiting(f: Followed) -> bool:
    """Does the open file hold bytes not read yet? (Then the next poll only reads: rotation
    and truncation are looked at when a file has nothing more.)"""
    if f.handle is None:
        return False
    try:
        return os.fstat(f.handle.fileno()).st_size > f.handle.tell()
    except OSError:  # not a regular file (a pipe has no position): one read per poll
        return False


def open_followed(
    path: Path,
    saved_at: Callable[[str], Checkpoint | None],
    fmt: str | None,
    backends: dict[str, str],
    summary: IngestSummary,
    console: Console | None,
    make_parser: Callable[[str, str | None], Parser] = new_parser,
) -> Followed:
    """Open a followed file where its checkpoint (`saved_at(key)`) left it, finishing a file
    rotated away (renamed, or copied and truncated) while stopped first."""
    if path.is_dir():
        raise InputError(f"{path}: follow mode takes files, not folders")
    followed = Followed(path, fmt, backends, make_parser=make_parser)
    summary.files += 1
    saved = saved_at(followed.key)
    try:
        handle = open_unbuffered(path)
    except FileNotFoundError:
        raise InputError(
            f"{path}: no such file (follow mode waits for growth, not creation)"
        ) from None
    except NotADirectoryError:
        raise InputError(f"{path}: {not_a_folder(path) or 'not a directory'}") from None
    stat = os.fstat(handle.fileno())
    if saved is None:
        followed.open(handle)
        return followed
    if saved.inode == stat.st_ino and saved.device == stat.st_dev:
        if stat.st_size >= saved.offset and same_file(handle, saved):
            followed.open(handle, saved.offset, saved.line)
            return followed
        copy = find_copy(path, saved.fingerprint, saved.offset, (stat.st_dev, stat.st_ino))
        if copy is not None and open_sibling(followed, copy, saved, handle):
            _say(console, f"{path} was truncated while stopped; finishing its copy {copy} first")
        else:
            _say(
                console,
                f"{path} was truncated or rewritten while stopped (it no longer matches its "
                "checkpoint) and no copy of it was found beside it; reading from the start "
                f"(what it held after byte {saved.offset} is lost)",
            )
            followed.open(handle)
        return followed
    rotated = find_inode(path.parent, saved.device, saved.inode)
    if rotated is not None and open_sibling(followed, rotated, saved, handle):
        _say(console, f"{path} was rotated while stopped; finishing {rotated.name} first")
    else:
        _say(
            console,
            f"{path} was replaced while stopped and its old file is gone; "
            "reading the new one from the start",
        )
        followed.open(handle)
    return followed


def poll_followed(f: Followed, summary: IngestSummary, config: Config) -> FeedResult:
    """Read what is new in one file; handle truncation and rotation at end of data."""
    out = FeedResult()
    assert f.handle is not None  # noqa: S101 - opened in _start
    f.max_line = config.ingest.limits.max_line_bytes
    if _read(f, out, summary):
        return out
    # No new data: rotated away, or just quiet (truncation is noticed by `_read`).
    try:
        stat = f.path.stat()
    except FileNotFoundError:
        return out  # rotated, not yet recreated: keep the old handle until it appears
    if (stat.st_ino, stat.st_dev) != (f.inode, f.device):
        # Lines the writer appended to the old file between the read above and the rotation
        # are still behind the old handle: read them all before leaving it.
        if _read(f, out, summary):
            return out
        try:
            handle = open_unbuffered(f.path)
        except FileNotFoundError:
            return out  # the new file went away again: look once more next poll
        _leave(f, out, summary, handle)
    elif f.parser and f.parser.parser and time.monotonic() - f.quiet_since > IDLE_FLUSH_SECONDS:
        out.extend(f.parser.parser.flush(f.reading or str(f.path)))  # unanswered requests
    return out


_poll = poll_followed  # the name tests/bus/test_follow.py knows it by


def _read(f: Followed, out: FeedResult, summary: IngestSummary) -> bool:
    """Read and feed the next chunk of the open file; False at end of data. A chunk read
    from a file found truncated afterwards is not fed: it may be the file's new content,
    read at the old offset; what the file held is read from its copy instead."""
    assert f.handle is not None  # noqa: S101 - opened in _start
    data = f.handle.read(READ_BYTES)
    if not f.reading and _truncated(f, len(data)):
        _after_truncation(f, out, summary)
        return True
    if not data:
        return False
    f.quiet_since = time.monotonic()
    if f.skipping:
        nl = data.find(b"\n")
        if nl < 0:
            f.offset += len(data)
            return True
        f.offset, f.line, f.skipping = f.offset + nl + 1, f.line + 1, False
        data = data[nl + 1 :]
    records, f.rest, next_line, next_offset = split_lines(f.rest + data, f.line, f.offset)
    f.line, f.offset = next_line, next_offset
    _feed(f, records, out, summary)
    if len(f.rest) > f.max_line:
        _cut_line(f, out)
    return True


def _cut_line(f: Followed, out: FeedResult) -> None:
    """A line grew past `ingest.limits.max_line_bytes` without its newline: its first bytes
    are a dead letter and the rest of it is skipped, so memory stays bounded. (A restart
    while skipping resumes inside the line: that part becomes a dead letter of its own.)"""
    reason = f"line longer than {f.max_line:,} bytes (ingest.limits.max_line_bytes)"
    raw = redact_raw(f.rest[:4096])
    out.dead.append(DeadLetter(f.reading or str(f.path), f.line, f.offset, reason, raw, f.fmt))
    out.dead_records += 1
    f.offset += len(f.rest)
    f.rest, f.skipping = b"", True


def _truncated(f: Followed, just_read: int) -> bool:
    """Was the followed file truncated in place since it was last looked at: is it shorter
    than what has been read, or do its first bytes differ from those it had? (Looked at
    after the read, so a chunk that passes was read before any truncation.)"""
    assert f.handle is not None  # noqa: S101 - a followed file is open
    head = os.pread(f.handle.fileno(), FINGERPRINT_BYTES, 0)
    size = os.fstat(f.handle.fileno()).st_size
    if not head.startswith(f.head) or size < f.offset + len(f.rest) + just_read:
        return True
    f.head, f.size = head, size
    return False


def _after_truncation(f: Followed, out: FeedResult, summary: IngestSummary) -> None:
    """copytruncate: read on in the copy beside the file from where reading stands (the
    line held in part included), then the truncated file from its start (`poll_followed`
    moves on to the file at the path once the copy is read). Without a copy, warn and read
    the truncated file from its start at once."""
    assert f.handle is not None  # noqa: S101 - a followed file is open
    not_this = (f.device, f.inode)
    copy = find_copy(f.path, fingerprint_of(f.head), f.offset, not_this) if f.head else None
    if copy is not None:
        try:
            handle = open_unbuffered(copy)
        except OSError:
            copy = None
    if copy is not None:
        log.info("%s was truncated (copytruncate); reading on in its copy %s", f.path, copy)
        _let_go_behind(f, out)
        # The held part of a line is read again, whole; the waiting requests' offsets hold
        # in the copy as they did in the file.
        f.open(handle, f.offset, f.line)
        f.reading = str(copy)
        return
    _warn_lost(f)
    _leave(f, out, summary, f.handle)


def _warn_lost(f: Followed) -> None:
    lost = max(f.size - f.offset, len(f.rest))
    log.warning(
        "%s was truncated in place (copytruncate rotation) and no copy of it was found in %s "
        "(a file starting with its first %d bytes and at least %d bytes long): %d bytes not "
        "yet read (from byte %d) may be lost, with whatever was written after the last look "
        "at it. To avoid this, rotate by rename (logrotate `create` instead of "
        "`copytruncate`, with a postrotate that makes the writer reopen its file, e.g. "
        "SIGHUP for Vault), or keep the rotated copy uncompressed in the same folder (no "
        "`olddir`; `delaycompress` with `compress`).",
        f.path,
        f.path.parent,
        len(f.head),
        f.offset,
        lost,
        f.offset,
    )


def _feed(f: Followed, records: list[Record], out: FeedResult, summary: IngestSummary) -> None:
    """Feed records to the file's parser (which holds the first ones until the format is known)."""
    if f.parser is None:
        f.parser = RecognizingParser(f.fmt, f.backends, summary.formats, f.make_parser)
    f.fed_since_left += len(records)
    out.extend(f.parser.feed(records, f.reading or str(f.path)))


def _leave(f: Followed, out: FeedResult, summary: IngestSummary, handle: BinaryIO) -> None:
    """The file being read is done: read `handle` (the file now at the path) from its start.
    The old file's last unterminated line counts now, as it is (cut, if the writer or the
    copy stopped inside it). The parser keeps its waiting requests, to pair them with
    responses in the new file; until they are answered, a restart begins at the oldest in
    the old file, which rotation keeps beside the new one (`handle is f.handle`: truncated
    without a copy, the old content is gone and a restart can only begin at 0)."""
    if f.rest.strip():
        _feed(f, [(f.rest, f.line, f.offset)], out, summary)
        f.rest = b""
    gone = handle is f.handle
    if not gone:
        _let_go_behind(f, out)
    if f.behind is None and f.parser is not None and f.parser.pending_position() is not None:
        f.behind = f.at(0, 1) if gone else f.checkpoint()
        f.fed_since_left = 0
    f.open(handle)


def _let_go_behind(f: Followed, out: FeedResult) -> None:
    """About to leave a second file while requests may still wait from the first: a restart
    can go back one rotated file, not two, so the waiting requests count alone now (each
    response, when read, replaces its provisional event in the store)."""
    if f.behind is not None and f.parser is not None and f.checkpoint() is f.behind:
        # (still held: a request from the first file may still wait)
        out.extend(f.parser.flush(f.reading or str(f.path)))
    f.behind = None


def _say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(Text.from_markup("[yellow]note:[/] ") + inert(message))  # names: inert
