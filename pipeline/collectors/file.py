"""The `file` collector: audit files followed like `tail -F`, as `ingest --follow` does.

The files are durable already, so nothing is spooled: the service's reader follows the
paths themselves (with the file's stored checkpoint, across rotation and restarts), and
this object only says which paths, in which format, and checks at start that they exist
(follow mode waits for growth, not for creation).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.collectors.base import Intake
from pipeline.collectors.settings import FileCollector
from pipeline.errors import ConfigError


class FileFollower:
    """The paths one `file` collector follows; the service's reader reads them."""

    def __init__(self, settings: FileCollector) -> None:
        self.name = settings.label
        self.paths = [Path(p) for p in settings.paths]
        self.format = settings.format
        self._started = False

    @property
    def listening(self) -> bool:
        return self._started

    def start(self) -> None:
        for path in self.paths:
            if not path.is_file():
                what = "a folder, not a file" if path.is_dir() else "no such file"
                raise ConfigError(
                    f"collector {self.name}: {path}: {what} (follow mode takes files and "
                    "waits for growth, not creation)"
                )
        self._started = True

    def stop(self) -> None:
        self._started = False


def make(settings: FileCollector, intake: Intake | None = None) -> FileFollower:
    """`intake` is unused: a followed file needs no spool."""
    return FileFollower(settings)
