"""Follow audit files like `tail -F`: read as they grow, across rotation and truncation,
and resume after a restart from the offset stored with the last batch.

The checkpoint is written in the same store transaction as the events it covers, and it
points at the oldest record not yet turned into a stored event (a Vault request still
waiting for its response), so a killed process re-reads at most a few records, which the
store's idempotency absorbs: no gap, no duplicate.

Rotation by rename keeps the inode, so on restart a checkpoint whose inode no longer sits
at the path is looked for among the file's siblings and finished first.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.text import Text

from pipeline.config import Config
from pipeline.errors import InputError
from pipeline.ingest import DetectingParser, IngestSummary
from pipeline.paths import not_a_folder
from pipeline.record import EventRow
from pipeline.sources import new_parser
from pipeline.sources.base import FeedResult, Parser, Record
from pipeline.sources.framing import split_lines
from pipeline.store.base import Checkpoint, Store
from pipeline.terminal import inert

READ_BYTES = 4 << 20
IDLE_FLUSH_SECONDS = (
    5.0  # a Vault request unanswered this long after the file went quiet counts alone
)


@dataclass
class Followed:
    """One followed path and where reading stands in the file currently open for it."""

    path: Path
    fmt: str | None
    backends: dict[str, str]  # backend name per format, applied once the format is known
    handle: BinaryIO | None = None
    device: int = 0
    inode: int = 0
    offset: int = 0  # of the first byte of `rest`
    line: int = 1
    rest: bytes = b""
    parser: DetectingParser | None = None
    quiet_since: float = field(default_factory=time.monotonic)
    reading: str = ""  # the file actually being read, for dead letters (a rotated sibling)
    make_parser: Callable[[str, str | None], Parser] = new_parser  # `ship` produces instead

    @property
    def key(self) -> str:
        return str(self.path.resolve())

    def open(self, handle: BinaryIO, offset: int = 0, line: int = 1) -> None:
        if self.handle is not None and self.handle is not handle:
            self.handle.close()  # not when reopening the same handle (copytruncate)
        stat = os.fstat(handle.fileno())
        handle.seek(offset)
        self.handle, self.device, self.inode = handle, stat.st_dev, stat.st_ino
        self.offset, self.line, self.rest = offset, line, b""
        self.reading = ""

    def checkpoint(self) -> Checkpoint:
        position = self.parser.pending_position() if self.parser else None
        offset, line = position if position else (self.offset, self.line)
        assert self.handle is not None  # noqa: S101 - a checkpoint is taken of an open file
        return Checkpoint(
            self.key,
            str(self.path),
            self.device,
            self.inode,
            offset,
            line,
            fingerprint(self.handle, offset),
        )


FINGERPRINT_BYTES = 256


def fingerprint(handle: BinaryIO, upto: int) -> str:
    """Hash of the file's first min(upto, 256) bytes, read without moving the handle."""
    n = min(upto, FINGERPRINT_BYTES)
    head = os.pread(handle.fileno(), n, 0)
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()}"


def _same_file(handle: BinaryIO, saved: Checkpoint) -> bool:
    """Does this file still start with the bytes the checkpoint saw? (None: not recorded.)"""
    if saved.fingerprint is None:
        return True
    n = int(saved.fingerprint.split(":", 1)[0])
    return fingerprint(handle, n) == saved.fingerprint


def follow_files(
    paths: list[str],
    store: Store,
    config: Config,
    fmt: str | None = None,
    console: Console | None = None,
    stop: threading.Event | None = None,
    on_stored: Callable[[list[EventRow]], None] | None = None,
) -> IngestSummary:
    """Follow `paths` until `stop` is set (or Ctrl-C / SIGTERM); return what was ingested.
    `on_stored` gets each batch once it is stored with its checkpoint (live detection)."""
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
        _loop(files, store, config, summary, stop, on_stored)
    finally:
        for followed in files:
            if followed.handle:
                followed.handle.close()
    return summary


def _loop(
    files: list[Followed],
    store: Store,
    config: Config,
    summary: IngestSummary,
    stop: threading.Event,
    on_stored: Callable[[list[EventRow]], None] | None = None,
) -> None:
    poll = config.ingest.follow_poll_seconds
    try:
        while not stop.is_set():
            grew = False
            for followed in files:
                result = poll_followed(followed, summary, config)
                grew = grew or bool(result.accounted or result.rows)
                if result.rows or result.dead or result.accounted:
                    summary.add(result)
                    summary.stored += store.write_batch(
                        result.rows, result.dead, [followed.checkpoint()]
                    )
                    if on_stored is not None and result.rows:
                        on_stored(result.rows)
            if not grew:
                stop.wait(poll)
    except KeyboardInterrupt:
        pass


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
    rotated away while stopped first."""
    if path.is_dir():
        raise InputError(f"{path}: follow mode takes files, not folders")
    followed = Followed(path, fmt, backends, make_parser=make_parser)
    summary.files += 1
    saved = saved_at(followed.key)
    try:
        handle = path.open("rb")
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
        if stat.st_size >= saved.offset and _same_file(handle, saved):
            followed.open(handle, saved.offset, saved.line)
        else:
            _say(
                console,
                f"{path} was truncated or rewritten while stopped (it no longer matches its "
                "checkpoint); reading from the start",
            )
            followed.open(handle)
        return followed
    rotated = _find_inode(path.parent, saved.device, saved.inode)
    old = rotated.open("rb") if rotated is not None else None
    if (
        old is not None
        and os.fstat(old.fileno()).st_size >= saved.offset
        and _same_file(old, saved)
    ):
        _say(console, f"{path} was rotated while stopped; finishing {rotated.name} first")
        followed.open(old, saved.offset, saved.line)
        followed.reading = str(rotated)
        handle.close()
    else:
        if old is not None:
            old.close()
        _say(
            console,
            f"{path} was replaced while stopped and its old file is gone; "
            "reading the new one from the start",
        )
        followed.open(handle)
    return followed


def _find_inode(folder: Path, device: int, inode: int) -> Path | None:
    with os.scandir(folder) as entries:  # closed on the early return too
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.st_ino == inode and stat.st_dev == device and entry.is_file():
                return Path(entry.path)
    return None


def poll_followed(f: Followed, summary: IngestSummary, config: Config) -> FeedResult:
    """Read what is new in one file; handle truncation and rotation at end of data."""
    out = FeedResult()
    assert f.handle is not None  # noqa: S101 - opened in _start
    if _read(f, out, summary):
        return out
    # No new data: truncated in place, rotated away, or just quiet.
    try:
        stat = f.path.stat()
    except FileNotFoundError:
        return out  # rotated, not yet recreated: keep the old handle until it appears
    position = f.handle.tell()
    if (stat.st_ino, stat.st_dev) != (f.inode, f.device):
        # Lines the writer appended to the old file between the read above and the rotation
        # are still behind the old handle: read them all before leaving it.
        if _read(f, out, summary):
            return out
        try:
            handle = f.path.open("rb")
        except FileNotFoundError:
            return out  # the new file went away again: look once more next poll
        _finish(f, out, summary)
        f.parser = None
        f.open(handle)
    elif stat.st_size < position:
        _finish(f, out, summary)
        f.parser = None
        f.open(f.handle, 0, 1)  # copytruncate: same file, from the start
    elif f.parser and f.parser.parser and time.monotonic() - f.quiet_since > IDLE_FLUSH_SECONDS:
        out.extend(f.parser.parser.flush(f.reading or str(f.path)))  # unanswered requests
    return out


_poll = poll_followed  # the name tests/bus/test_follow.py knows it by


def _read(f: Followed, out: FeedResult, summary: IngestSummary) -> bool:
    """Read and feed the next chunk of the open file; False at end of data."""
    assert f.handle is not None  # noqa: S101 - opened in _start
    data = f.handle.read(READ_BYTES)
    if not data:
        return False
    f.quiet_since = time.monotonic()
    records, f.rest, next_line, next_offset = split_lines(f.rest + data, f.line, f.offset)
    f.line, f.offset = next_line, next_offset
    summary.records += len(records)
    _feed(f, records, out, summary)
    return True


def _feed(f: Followed, records: list[Record], out: FeedResult, summary: IngestSummary) -> None:
    """Feed records to the file's parser (which holds the first ones until the format is known)."""
    if f.parser is None:
        f.parser = DetectingParser(f.fmt, f.backends, summary.formats, f.make_parser)
    out.extend(f.parser.feed(records, f.reading or str(f.path)))


def _finish(f: Followed, out: FeedResult, summary: IngestSummary) -> None:
    """The old file is done: its last unterminated line and any waiting requests count."""
    if f.rest.strip():
        summary.records += 1
        _feed(f, [(f.rest, f.line, f.offset)], out, summary)
        f.rest = b""
    if f.parser:
        out.extend(f.parser.flush(f.reading or str(f.path)))


def _say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(Text.from_markup("[yellow]note:[/] ") + inert(message))  # names: inert
