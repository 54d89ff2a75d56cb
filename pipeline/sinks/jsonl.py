"""JSON lines to a file (the embedded default) or to standard output.

One alert revision a line. A line is written (and, with `fsync`, on disk) before the
alert counts as delivered, so a crash can at worst repeat the last batch: readers keep the
highest `revision` per `id` (`revision` is in every line, in every format).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO, Any

from pipeline.errors import ConfigError
from pipeline.paths import make_folder
from pipeline.sinks.base import Outgoing, SinkError, dumps
from pipeline.sinks.payloads import render
from pipeline.sinks.settings import JsonlSink, StdoutSink


def _lines(fmt: str, batch: Sequence[Outgoing]) -> bytes:
    out = []
    for item in batch:
        doc = render(fmt, item.alert)
        if fmt != "native":  # the idempotency key and revision, whatever the shape
            doc = {"id": item.alert_id, "revision": item.revision, **doc}
        out.append(dumps(doc))
    return b"\n".join(out) + b"\n"


class JsonlFileSink:
    def __init__(self, cfg: JsonlSink) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, cfg.batch_size
        self._file: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"JsonlFileSink({self.name!r}, {str(self.cfg.path)!r})"

    def start(self) -> None:
        try:
            make_folder(self.cfg.path.parent)
            self._file = self.cfg.path.open("ab")
        except OSError as exc:
            raise ConfigError(
                f"sink {self.name!r}: cannot open {self.cfg.path} for appending "
                f"({exc.strerror or exc}); fix `path` or the folder's permissions"
            ) from None

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        if self._file is None:
            raise SinkError(f"sink {self.name!r} is not started")
        try:
            self._file.write(_lines(self.cfg.format, batch))
            self._file.flush()
            if self.cfg.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:  # a full disk is worth retrying
            raise SinkError(f"writing {self.cfg.path} failed: {exc.strerror}") from exc
        return {}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StdoutLinesSink:
    def __init__(self, cfg: StdoutSink, stream: IO[bytes] | None = None) -> None:
        self.cfg, self.name, self.batch_size = cfg, cfg.name, cfg.batch_size
        self._stream = stream

    def __repr__(self) -> str:
        return f"StdoutLinesSink({self.name!r})"

    def start(self) -> None:
        if self._stream is None:
            self._stream = sys.stdout.buffer

    def send(self, batch: Sequence[Outgoing]) -> dict[str, SinkError]:
        stream: Any = self._stream
        try:
            stream.write(_lines(self.cfg.format, batch))
            stream.flush()
        except (OSError, ValueError) as exc:  # a closed pipe
            raise SinkError(f"writing to standard output failed: {exc}") from exc
        return {}

    def close(self) -> None:
        self._stream = None
