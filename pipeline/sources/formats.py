"""Format recognition: which registered source wrote a file, told from its first records.

A file's records are held until one of them is recognised (or `RECOGNIZE_WITHIN` were
seen), then all go to that format's parser; a file no format claims is dead-lettered whole.
Batch ingestion, following and shipping all read files through `RecognizingParser`.

>>> k8s = b'{"kind":"Event","apiVersion":"audit.k8s.io/v1"}'
>>> recognize_format([(b"not json", 1, 0), (k8s, 2, 9)])
'k8s'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import orjson

from pipeline.sources import SOURCES, new_parser, recognize
from pipeline.sources.base import DeadLetter, FeedResult, Parser, Record, json_start, unwrap

RECOGNIZE_WITHIN = 200  # records scanned for a recognisable one before giving up on a file


def recognize_format(records: list[Record]) -> str | None:
    """The format of the first recognisable record among the first few of a file (after a
    line's text prefix only for formats whose parser skips it, as Vault's does)."""
    for raw, _, _ in records[:RECOGNIZE_WITHIN]:
        data = bytes(raw)
        start = json_start(data)
        try:
            doc = orjson.loads(data[start:])
        except orjson.JSONDecodeError:
            continue
        for _, item in unwrap(doc):
            found = recognize(item)
            if found and (not start or SOURCES[found].prefixed):
                return found
            break
    return None


class RecognizingParser:
    """A file's parser, chosen once its first records show the format (or forced): until
    then records are held, and their position is where a follower must resume."""

    def __init__(
        self,
        fmt: str | None,
        backends: dict[str, str],
        formats: Counter[str] | None = None,
        make: Callable[[str, str | None], Parser] = new_parser,
    ) -> None:
        self.fmt = fmt
        self.backends = backends
        self.formats = formats if formats is not None else Counter()
        self.make = make  # `ship` makes parsers that produce records instead of events
        self.parser: Parser | None = None
        self.held: list[Record] = []

    def feed(self, records: list[Record], file: str, force: bool = False) -> FeedResult:
        if self.parser is None:
            self.held.extend(records)
            fmt = self.fmt or recognize_format(self.held)
            if fmt is None and len(self.held) < RECOGNIZE_WITHIN and not force:
                return FeedResult()
            self.parser = self.make(fmt, self.backends.get(fmt)) if fmt else UnrecognisedParser()
            if fmt:
                self.formats[fmt] += 1
            records, self.held = self.held, []
        return self.parser.feed(records, file)

    def flush(self, file: str) -> FeedResult:
        """End of input: held records are parsed as whatever they are, waiting ones count."""
        out = self.feed([], file, force=True) if self.held else FeedResult()
        if self.parser is not None:
            out.extend(self.parser.flush(file))
        return out

    def pending_position(self) -> tuple[int, int] | None:
        if self.held:
            return self.held[0][2], self.held[0][1]
        return self.parser.pending_position() if self.parser else None


class UnrecognisedParser:
    """Dead-letters every record of a file whose format could not be recognised."""

    def feed(self, records: list[Record], file: str) -> FeedResult:
        formats = ", ".join(sorted(SOURCES))
        reason = f"unrecognised format (not any of: {formats}); pass --format if it is one"
        dead = [DeadLetter.of(r, file, reason, None) for r in records]
        return FeedResult(dead=dead, dead_records=len(dead))

    def flush(self, file: str) -> FeedResult:
        return FeedResult()

    def pending_position(self) -> tuple[int, int] | None:
        return None
