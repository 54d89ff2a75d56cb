"""Files that survive a crash: written under a temporary name in their folder, fsynced,
renamed into place, and the folder fsynced, so a file either is whole under its name or
is not there (a `.tmp` left behind is removed by the next run). And hashing in big chunks.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.archive.layout import TMP_SUFFIX
from pipeline.paths import make_folder

CHUNK = 8 << 20  # hashing reads 8 MiB at a time (hashlib releases the GIL on big updates)


def write_durably(path: Path, data: bytes | memoryview, sync: bool = True) -> None:
    """Write `data` to `path` so that after a crash `path` is either whole or absent
    (`sync` False leaves fsyncing the folder to the caller, once for several files)."""
    make_folder(path.parent)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of a file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb", buffering=0) as handle:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while n := handle.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()
