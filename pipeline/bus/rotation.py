"""Find the file a checkpoint points at after rotation: by rename (its inode now sits at a
sibling's name) or by copytruncate (a sibling copy that starts with the same bytes).

Apart from `follow` (reading, feeding, storing) because a file's identity is its inode and
its first bytes (`fingerprint`), never its name, and finding it means scanning the folder.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from pipeline.store.base import Checkpoint

if TYPE_CHECKING:
    from pipeline.bus.followed import Followed

FINGERPRINT_BYTES = 256


def fingerprint(handle: BinaryIO, upto: int) -> str:
    """Hash of the file's first min(upto, 256) bytes, read without moving the handle."""
    return fingerprint_of(os.pread(handle.fileno(), min(upto, FINGERPRINT_BYTES), 0))


def fingerprint_of(head: bytes) -> str:
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()}"


def same_file(handle: BinaryIO, saved: Checkpoint) -> bool:
    """Does this file still start with the bytes the checkpoint saw? (None: not recorded.)"""
    if saved.fingerprint is None:
        return True
    n = int(saved.fingerprint.split(":", 1)[0])
    return fingerprint(handle, n) == saved.fingerprint


def find_inode(folder: Path, device: int, inode: int) -> Path | None:
    with os.scandir(folder) as entries:  # closed on the early return too
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.st_ino == inode and stat.st_dev == device and entry.is_file():
                return Path(entry.path)
    return None


def find_copy(
    path: Path, fingerprint_: str | None, size: int, not_this: tuple[int, int]
) -> Path | None:
    """The copy copytruncate left of `path`: a regular file in the same folder (`audit.log.1`,
    `audit.log-20261202`, any name), not `path` itself (`not_this`: device, inode), at least
    `size` bytes long, starting with the bytes `path` started with (`fingerprint_`). Of
    several, the longest (the latest copy of the same file). Compressed copies do not match.
    """
    if fingerprint_ is None:
        return None
    n = int(fingerprint_.split(":", 1)[0])
    found: list[tuple[int, bool, str]] = []
    with os.scandir(path.parent) as entries:
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
                if (
                    not entry.is_file(follow_symlinks=False)
                    or (stat.st_dev, stat.st_ino) == not_this
                    or stat.st_size < max(size, n)
                ):
                    continue
                with open(entry.path, "rb") as candidate:
                    if fingerprint(candidate, n) != fingerprint_:
                        continue
            except OSError:
                continue  # gone meanwhile, or not ours to read
            found.append((stat.st_size, entry.name.startswith(path.name), entry.path))
    return Path(max(found)[2]) if found else None


def open_unbuffered(path: Path) -> BinaryIO:
    """Open for following, unbuffered: each read is one read(2) at the file's offset, so no
    bytes read ahead before a truncation are served again after seeking back to 0."""
    return cast(BinaryIO, path.open("rb", buffering=0))


def open_sibling(f: Followed, sibling: Path, saved: Checkpoint, handle: BinaryIO) -> bool:
    """Read `sibling` (the followed file rotated away) from the checkpoint on, if it still
    holds the bytes the checkpoint saw; then `handle` (the file at the path) is not needed."""
    try:
        old = open_unbuffered(sibling)
    except OSError:
        return False
    if os.fstat(old.fileno()).st_size < saved.offset or not same_file(old, saved):
        old.close()
        return False
    f.open(old, saved.offset, saved.line)
    f.reading = str(sibling)
    handle.close()
    return True
