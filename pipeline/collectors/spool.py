"""A collector's durable local spool: what arrives is appended and fsynced here before the
sender is answered, and before anything slower (parsing, the store, detection) happens.

A spool is a folder of JSON lines, one raw record or document per line (a Vault entry, a
Kubernetes `EventList`, a CloudTrail object's `{"Records": [...]}`), so the service reads
it with the same follower as `ingest --follow` (`pipeline/bus/follow.py`): the read
position is a checkpoint stored in the same transaction as the events it covers, and a
killed service resumes from it. `current.jsonl` is written; when it passes
`segment_bytes` it is renamed to `seg-<n>.jsonl` (rotation by rename, which the follower
finishes before moving on) and segments wholly behind the checkpoint are deleted. Only one
rotated segment exists at a time: while it waits to be read, `current.jsonl` grows on.

Appends from many threads are group-committed: each writes under a lock, then one fsync
covers every write before it, so a burst of small requests costs few fsyncs.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from pipeline.paths import sync_folder
from pipeline.store.base import Checkpoint

CURRENT = "current.jsonl"
LAZY_SYNC_SECONDS = 0.05  # how soon a `sync=False` append is fsynced
_SEGMENT = re.compile(r"^seg-(\d{10})\.jsonl$")


class Spool:
    """One collector's spool folder. `append` is durable when it returns."""

    def __init__(self, folder: Path, segment_bytes: int = 64 << 20) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / CURRENT
        self.segment_bytes = segment_bytes
        self._write = threading.Lock()
        self._sync = threading.Lock()
        self._written = 0  # bytes written since opening (all files)
        self._synced = 0  # of those, how many an fsync has covered
        self.lines = 0  # lines appended since opening
        self._syncer: threading.Thread | None = None  # fsyncs `sync=False` appends
        self._waiting = self._segment_left()  # a rotated segment not yet pruned
        self._closing = threading.Event()
        self._fd = self._open()

    def _open(self) -> int:
        """Open `current.jsonl` for appending; a last line without its newline was cut by a
        crash mid-write (never acknowledged), so it is dropped rather than glued to the next."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(fd).st_size
        if size:
            tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail))
                os.ftruncate(fd, keep)
                os.fsync(fd)
        return fd

    def append(self, lines: Sequence[bytes], sync: bool = True) -> None:
        """Append `lines` (each one record, without newlines) and fsync before returning.

        `sync=False` is for a sender that gets no acknowledgement (Vault's socket device):
        the lines are written (a killed process loses none of them) and a background
        thread fsyncs within `LAZY_SYNC_SECONDS`, so reading the socket never waits for
        the disk; only a crash of the machine itself can lose that last moment."""
        if not lines:
            return
        data = b"\n".join(lines) + b"\n"
        if data.count(b"\n") != len(lines):
            raise ValueError("a spooled record must not contain a newline")
        self.append_block(data, len(lines), sync)

    def append_block(self, data: bytes, lines: int, sync: bool = True) -> None:
        """Append `data`, whole lines each ending in a newline (`lines` of them), as
        `append` does: a collector that reads a stream of lines spools what it read as is,
        without cutting it into records first."""
        if not data.endswith(b"\n"):
            raise ValueError("a spooled block must end with a newline")
        with self._write:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self._written += len(data)
            self.lines += lines
            mine = self._written
            full = os.fstat(self._fd).st_size >= self.segment_bytes and not self._waiting
        if sync or full:
            self._sync_to(mine)  # rotation happens here, at an append, as a reader expects
        elif self._syncer is None:
            self._syncer = threading.Thread(
                target=self._sync_lazily, name=f"spool-sync-{self.folder.name}", daemon=True
            )
            self._syncer.start()

    @property
    def unsynced(self) -> int:
        """Bytes written but not yet covered by an fsync."""
        with self._write:
            return self._written - self._synced

    def _sync_to(self, mine: int, rotate: bool = True) -> None:
        """fsync until byte `mine` (one fsync covers every write before it), then rotate
        if the file is full (only at an append: a rotation after the last one would leave
        a segment that the reader, with nothing new to read, never prunes)."""
        with self._sync:  # rotation happens only here, so no fd closes under an fsync
            if self._synced >= mine:
                return  # another thread's fsync covered this write
            with self._write:
                fd, upto = self._fd, self._written
            os.fsync(fd)
            self._synced = max(self._synced, upto)
            if rotate and os.fstat(fd).st_size >= self.segment_bytes and not self._segment_left():
                self._rotate()

    def _sync_lazily(self) -> None:
        while not self._closing.wait(LAZY_SYNC_SECONDS):
            with self._write:
                written = self._written
            if written > self._synced:
                self._sync_to(written, rotate=False)

    def _rotate(self) -> None:
        with self._write:
            os.fsync(self._fd)
            self._synced = self._written
            os.rename(self.path, self.folder / f"seg-{self._next_segment():010d}.jsonl")
            self._waiting = True
            old, self._fd = self._fd, self._open()
            os.close(old)
        sync_folder(self.folder)

    def _segment_left(self) -> bool:
        """Is a rotated segment still there (not yet read and pruned)? Then `current.jsonl`
        grows on instead: the follower finishes one rotated file before it moves on to the
        file at the path, so a second rotation before the first is read would be skipped."""
        return any(_SEGMENT.match(p.name) for p in self.folder.iterdir())

    def segments(self) -> list[Path]:
        """Rotated segments, oldest first, then `current.jsonl`."""
        done = sorted(p for p in self.folder.iterdir() if _SEGMENT.match(p.name))
        return [*done, self.path]

    def start(self, key: str) -> Checkpoint | None:
        """Where a reader with no stored checkpoint starts: at the rotated segment, if one
        is left (the spool rotated before anything was stored), so that it is read before
        `current.jsonl`, as a rotation after a checkpoint would be."""
        done = self.segments()[:-1]
        if not done:
            return None
        try:
            stat = done[0].stat()
        except FileNotFoundError:
            return None
        return Checkpoint(key, str(self.path), stat.st_dev, stat.st_ino, 0, 0)

    def prune(self, checkpoint: Checkpoint | None) -> int:
        """Delete the segments wholly before the one `checkpoint` is in; how many. Nothing is
        deleted while the checkpoint's file cannot be found (it may be mid-rotation)."""
        if checkpoint is None:
            return 0
        files = self.segments()
        at = _index_of(files, checkpoint.inode)
        if at is None:
            return 0
        for old in files[:at]:
            old.unlink(missing_ok=True)
        if at:
            self._waiting = self._segment_left()
        return at

    def depth(self, checkpoint: Checkpoint | None) -> int:
        """Bytes spooled but not yet stored (behind `checkpoint`, the follower's position)."""
        files = self.segments()
        sizes = [_size(p) for p in files]
        if checkpoint is None:
            return sum(sizes)
        at = _index_of(files, checkpoint.inode)
        if at is None:
            return sum(sizes)
        return max(0, sum(sizes[at:]) - checkpoint.offset)

    def close(self) -> None:
        self._closing.set()
        if self._syncer is not None:
            self._syncer.join()
        with self._write:
            os.fsync(self._fd)
            self._synced = self._written
            os.close(self._fd)

    def _next_segment(self) -> int:
        numbers = [int(m[1]) for p in self.folder.iterdir() if (m := _SEGMENT.match(p.name))]
        return max(numbers, default=0) + 1


def _index_of(files: list[Path], inode: int) -> int | None:
    for i, p in enumerate(files):
        try:
            if p.stat().st_ino == inode:
                return i
        except FileNotFoundError:
            continue
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
