"""One followed file's state: where reading stands in the file open for it, what identifies
that file (device, inode, first bytes) and the checkpoint a restart resumes from.

Apart from `follow` (the polling loop that drives it) to keep that module under 400
lines; `rotation` reopens a followed file on a rotated sibling.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pipeline.bus.rotation import FINGERPRINT_BYTES, fingerprint
from pipeline.limits import MAX_LINE_BYTES
from pipeline.sources import new_parser
from pipeline.sources.base import Parser
from pipeline.sources.formats import RECOGNIZE_WITHIN, RecognizingParser
from pipeline.sources.vault import PAIR_WINDOW
from pipeline.store.base import Checkpoint

# Records fed after leaving a file by which every request read from it has been answered or
# counted alone (the parser holds a file's first records until it knows the format, then a
# request waits its pairing window).
LEFT_BEHIND_RECORDS = RECOGNIZE_WITHIN + PAIR_WINDOW


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
    parser: RecognizingParser | None = None
    quiet_since: float = field(default_factory=time.monotonic)
    reading: str = ""  # the file actually being read, for dead letters (a rotated sibling)
    make_parser: Callable[[str, str | None], Parser] = new_parser  # `ship` produces instead
    head: bytes = b""  # the file's first bytes (up to 256) when last looked at: finds its copy
    size: int = 0  # the file's size when last looked at
    # Where a restart must begin while requests read from a file left behind (rotated away)
    # may still wait for their responses, and how many records have been fed since.
    behind: Checkpoint | None = None
    fed_since_left: int = 0
    max_line: int = MAX_LINE_BYTES  # a longer line is a dead letter, then skipped
    skipping: bool = False  # inside such a line: read on to its newline

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
        self.skipping = False
        self.reading = ""
        self.head, self.size = os.pread(handle.fileno(), FINGERPRINT_BYTES, 0), stat.st_size

    def checkpoint(self) -> Checkpoint:
        position = self.parser.pending_position() if self.parser else None
        if self.behind is not None:
            if position is not None and self.fed_since_left < LEFT_BEHIND_RECORDS:
                return self.behind  # the oldest waiting request may be in the file left
            self.behind = None
        offset, line = position if position else (self.offset, self.line)
        return self.at(offset, line)

    def at(self, offset: int, line: int) -> Checkpoint:
        """A checkpoint at `offset` (on `line`) of the file open now."""
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
