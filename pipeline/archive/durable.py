"""Files that survive a crash: written under a temporary name in their folder, made
durable, then renamed into place, so a file either is whole under its name or is not
there (a `.tmp` left behind is removed by the next run). And hashing in big chunks.

One file: `write_durably` (fsync the file, rename, fsync the folder). Many files, as the
archiver writes a batch of days: `write_staged` each, then `sync_filesystem` once (one
`syncfs(2)` flushes them all, where an fsync per file and folder costs milliseconds
each), then `publish` renames them in order, then `sync_filesystem` again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import threading
from pathlib import Path

from pipeline.archive.layout import TMP_SUFFIX
from pipeline.paths import make_folder, sync_folder

CHUNK = 8 << 20  # hashing reads 8 MiB at a time (hashlib releases the GIL on big updates)

_local = threading.local()
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def staged(path: Path) -> Path:
    return path.with_name(path.name + TMP_SUFFIX)


def write_staged(path: Path, data: bytes | memoryview) -> Path:
    """Write `data` under `path`'s temporary name (not yet durable); return that name."""
    make_folder(path.parent)
    tmp = staged(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return tmp


def publish(paths: list[Path]) -> None:
    """Rename staged files to their names, in order (durable after `sync_filesystem`)."""
    for path in paths:
        os.replace(staged(path), path)


def sync_filesystem(folder: Path) -> None:
    """Flush everything written on `folder`'s filesystem (`syncfs`; `sync` elsewhere)."""
    if _syncfs is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {folder}: {os.strerror(err)}")
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` so that after a crash `path` is either whole or absent."""
    tmp = write_staged(path, data)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_folder(path.parent)


def sha256_file(path: Path | str, follow: bool = True) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of a file; `follow` False refuses a symbolic link
    (OSError ELOOP)."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
    with os.fdopen(fd, "rb", buffering=0) as handle:
        buffer = _buffer()
        view = memoryview(buffer)
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def _buffer() -> bytearray:
    """This thread's read buffer (allocating 8 MiB per file costs more than hashing a
    small one)."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(CHUNK)
    return buffer


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
