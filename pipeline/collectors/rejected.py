"""The dead letters a collector made at the door, kept on disk until the service stored
them.

A collector answers its sender (a 4xx), deletes the queue message or commits the offset
right after rejecting what it carried, so a dead letter held only in memory was lost with
a killed service, and with it the only trace of that input. `Rejected.append` writes it,
redacted, to `rejected.jsonl` in the collector's spool folder and fsyncs before returning.
The reader takes the file by renaming it to `rejected.taking.jsonl`, stores its letters,
then deletes it (`taken`). A service killed in between finds the taking file on its next
start and stores it again: both stores keep one copy of a dead letter.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from pathlib import Path

import orjson

from pipeline.paths import sync_folder
from pipeline.sources.base import DeadLetter

log = logging.getLogger(__name__)

LETTERS = "rejected.jsonl"
TAKING = "rejected.taking.jsonl"


class Rejected:
    """One collector's door dead letters, durable once `append` returns."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LETTERS
        self.taking = folder / TAKING
        self._lock = threading.Lock()  # an append never lands in a file being taken

    def append(self, letter: DeadLetter) -> None:
        line = orjson.dumps(_fields(letter)) + b"\n"
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                sync_folder(self.path.parent)  # the new name outlives a crash of the machine

    def waiting(self) -> bool:
        return self.taking.exists() or self.path.exists()

    def take(self) -> list[DeadLetter]:
        """The letters not yet stored: those taken before (a service killed before storing
        them), else those appended since. Call `taken` once they are stored."""
        with self._lock:
            if not self.taking.exists():
                if not self.path.exists():
                    return []
                os.replace(self.path, self.taking)
        return _read(self.taking)

    def taken(self) -> None:
        """The letters `take` returned are stored."""
        self.taking.unlink(missing_ok=True)


def _fields(letter: DeadLetter) -> dict[str, object]:
    return {
        "file": letter.file,
        "line": letter.line,
        "offset": letter.offset,
        "reason": letter.reason,
        "raw": base64.b64encode(letter.raw).decode(),
        "format": letter.format,
        "index": letter.index,
    }


def _read(path: Path) -> list[DeadLetter]:
    """The letters in `path`; a last line cut by a crash mid-write (never fsynced, so its
    sender was never answered) is left out."""
    letters = []
    for line in path.read_bytes().splitlines():
        try:
            f = orjson.loads(line)
            raw = base64.b64decode(f["raw"])
            letters.append(
                DeadLetter(
                    f["file"], f["line"], f["offset"], f["reason"], raw, f["format"], f["index"]
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("event=rejected_line_unreadable path=%s", path)
    return letters
