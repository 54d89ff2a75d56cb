"""Paths that need a folder where a file stands: errors that name the file in the way.

`Path.mkdir(parents=True, exist_ok=True)` under a regular file says "[Errno 17] File
exists", and opening `file/x` says "Not a directory" without saying which part is not;
these name it.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> (root / "afile").write_text("x")
1
>>> blocking_file(root / "afile" / "sub" / "x.log") == root / "afile"
True
>>> blocking_file(root / "new" / "x.log") is None
True
"""

from __future__ import annotations

import os
from pathlib import Path


def blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is not a folder (a file stands where
    a folder is needed), else None."""
    for place in path.parents:
        if place.exists():
            return None if place.is_dir() else place
    return None


def not_a_folder(path: Path) -> str | None:
    """`X is a file, not a directory` when a file stands where `path` needs a folder."""
    blocker = blocking_file(path)
    return None if blocker is None else f"{blocker} is a file, not a directory"


def make_folder(folder: Path) -> None:
    """`mkdir -p folder`; a file in the way raises NotADirectoryError naming that file
    (where mkdir says "File exists")."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = folder if folder.exists() and not folder.is_dir() else blocking_file(folder)
        if blocker is None:
            raise
        raise NotADirectoryError(f"{blocker} is a file, not a directory") from None


def sync_folder(folder: Path) -> None:
    """Make a file created or renamed in `folder` durable: fsync the folder itself."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
