"""Batch ingestion: paths (files, gzip, directories, stdin) -> parsers -> store.

Orchestration only: framing cuts records, a parser per file turns them into events and
dead letters, the store writes them in batches. Every record read is accounted for in the
summary as consumed, skipped (well-formed, not about secrets) or dead-lettered.
"""

from __future__ import annotations

import gc
import gzip
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError, ParseError
from pipeline.errortext import clean_error
from pipeline.limits import Limits
from pipeline.paths import not_a_folder
from pipeline.redact import redact_raw
from pipeline.sources import SOURCES, cloudtrail_digest, new_parser
from pipeline.sources.base import DeadLetter, FeedResult, Parser
from pipeline.sources.formats import RecognizingParser
from pipeline.sources.framing import Chunk, Cut, file_records, line_records
from pipeline.store.base import EventLog
from pipeline.timewindow import TimeWindow, quarantine

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# Files in a log folder that are documentation, not logs.
SKIP_SUFFIXES = {".md", ".rst", ".html", ".png", ".jpg", ".jpeg", ".pdf", ".py", ".sh"}
# DuckDB databases and their write-ahead logs: a store kept in the folder it ingests.
STORE_SUFFIXES = (".duckdb", ".duckdb.wal")
DUCKDB_MAGIC = b"DUCK"  # at byte 8 of every DuckDB database file, whatever its name


@dataclass
class IngestSummary:
    files: int = 0
    files_skipped: list[str] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)
    records: int = 0
    consumed: int = 0
    skipped_records: int = 0
    dead_records: int = 0
    events: int = 0
    quarantined: int = 0  # events dead-lettered for an implausible time
    stored: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    dead_examples: list[DeadLetter] = field(default_factory=list)
    # CloudTrail log objects checked against the digests beside them (None: none ingested)
    cloudtrail: cloudtrail_digest.DigestReport | None = None

    @property
    def duplicates(self) -> int:
        return self.events - self.stored

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead.values())

    def add(self, result: FeedResult) -> None:
        self.records += result.accounted
        self.consumed += result.consumed
        self.skipped_records += result.skipped_records
        self.dead_records += result.dead_records
        self.events += len(result.rows)
        self.quarantined += result.quarantined
        self.skipped.update(result.skipped)
        for letter in result.dead:
            self.dead[_reason_key(letter.reason)] += 1
            if len(self.dead_examples) < 5:
                self.dead_examples.append(letter)


GC_THRESHOLDS = (200_000, 50, 100)  # a young-generation pass every 200,000 allocations


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Ingest allocates millions of short-lived tuples and builds no reference cycles; at
    the cyclic collector's default cadence (every 700 allocations) its passes over the
    growing batch cost a tenth of the run, so they are spaced out while ingesting."""
    old = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _reason_key(reason: str) -> str:
    """Group dead-letter reasons for the summary (drop positions that vary per record)."""
    head = reason.split(" - ", 1)[0]
    return head.split(": line ", 1)[0][:120]


def expand_paths(paths: Iterable[str]) -> Iterator[Path | None]:
    """Files to read, in a stable order; None stands for stdin (`-`)."""
    for raw in paths:
        if raw == "-":
            yield None
            continue
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(
                    p.startswith(".") for p in child.relative_to(path).parts
                ):
                    yield child
        elif path.exists():
            yield path
        else:
            raise InputError(f"{raw}: {not_a_folder(path) or 'no such file or directory'}")


def store_files(store: object) -> frozenset[Path]:
    """The store's own file and its WAL, whatever their names (none for a server)."""
    path = getattr(store, "path", None)
    if not isinstance(path, Path):
        return frozenset()
    return frozenset({path.resolve(), Path(f"{path}.wal").resolve()})


def not_a_log(path: Path, own: frozenset[Path] = frozenset()) -> bool:
    """A file found among the inputs that is no audit log, skipped rather than dead-lettered:
    documentation, the store's own files (`own`), any `*.duckdb` / `*.duckdb.wal`, a
    file that starts as a DuckDB database does, or a CloudTrail digest (hashes, not events)."""
    name = path.name.lower()
    if path.suffix.lower() in SKIP_SUFFIXES or name.endswith(STORE_SUFFIXES):
        return True
    if cloudtrail_digest.is_digest(path):
        return True
    if own and path.resolve() in own:
        return True
    if not path.is_file():  # a FIFO or a device: nothing is read ahead of the parser
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(12)[8:12] == DUCKDB_MAGIC
    except OSError:
        return False  # reading it fails again, with the error, when it is ingested


class Ingestor:
    """Reads inputs into a store, in batches of `batch_size` events."""

    def __init__(
        self,
        store: EventLog,
        fmt: str | None = None,
        backends: dict[str, str] | None = None,
        batch_size: int = 150_000,
        on_advance: Callable[[int], None] | None = None,
        limits: Limits = Limits(),  # noqa: B008 - frozen
        window: TimeWindow | None = None,
        clock: Callable[[], float] = time.time,
        cloudtrail_keys: Sequence[RSAPublicKey] | None = None,
    ) -> None:
        """`cloudtrail_keys`: the public keys CloudTrail digests are verified with."""
        if fmt is not None and fmt not in SOURCES:
            new_parser(fmt)  # raises the error listing valid formats
        self.store = store
        self.fmt = fmt
        self.backends = backends or {}
        self.batch_size = batch_size
        self.on_advance = on_advance
        self.limits = limits
        self.window = window or TimeWindow()
        self.clock = clock
        self.summary = IngestSummary()
        self._pending = FeedResult()
        self.cloudtrail_keys = cloudtrail_keys

    def ingest(self, paths: Iterable[str]) -> IngestSummary:
        with fewer_gc_passes():
            return self._ingest(paths)

    def _ingest(self, paths: Iterable[str]) -> IngestSummary:
        own = store_files(self.store)
        trail: list[Path] = []  # CloudTrail log objects, checked against their digests
        for path in expand_paths(paths):
            if path is None:
                self.ingest_stream(_stdin_records(self.limits), "<stdin>")
            elif cloudtrail_digest.is_digest(path):
                continue  # evidence about the logs, not events: checked below
            elif not_a_log(path, own):
                self.summary.files_skipped.append(str(path))
            else:
                chunks = file_records(path, self._progress(), self.limits)
                self.ingest_stream(chunks, str(path))
                if cloudtrail_digest.is_log_object(path):
                    trail.append(path)
        self._write()
        if trail:
            self.summary.cloudtrail = cloudtrail_digest.verify(trail, self.cloudtrail_keys)
        return self.summary

    def _progress(self) -> Callable[[int], None] | None:
        """Turn one file's read positions into increments for the progress bar."""
        if self.on_advance is None:
            return None
        advance, last = self.on_advance, [0]

        def seen(position: int) -> None:
            advance(position - last[0])
            last[0] = position

        return seen

    def ingest_stream(self, chunks: Iterable[Chunk], name: str) -> None:
        """One file's records through one parser (format recognised on its first records)."""
        self.summary.files += 1
        parser = RecognizingParser(self.fmt, self.backends, self.summary.formats)
        for result in feed_stream(parser, chunks, name, self.fmt):
            quarantine(result, name, self.fmt, self.window, int(self.clock() * 1_000_000))
            self._take(result)

    def _take(self, result: FeedResult) -> None:
        self.summary.add(result)
        self._pending.extend(result)
        if len(self._pending.rows) >= self.batch_size or len(self._pending.dead) >= 10_000:
            self._write()

    def _write(self) -> None:
        pending, self._pending = self._pending, FeedResult()
        if pending.rows or pending.dead:
            self.summary.stored += self.store.write_batch(pending.rows, pending.dead)


def feed_stream(
    parser: Parser, chunks: Iterable[Chunk], name: str, fmt: str | None
) -> Iterator[FeedResult]:
    """One file's chunks through its parser. Input framing cut (over a cap) is one dead
    letter and reading goes on; a file-level failure (unparseable YAML) ends the file."""
    try:
        for chunk in chunks:
            if isinstance(chunk, Cut):
                raw = redact_raw(chunk.head)
                letter = DeadLetter(name, chunk.line, chunk.offset, chunk.reason, raw, fmt)
                yield FeedResult(dead=[letter], dead_records=1)
            else:
                yield parser.feed(chunk, name)
    except ParseError as exc:
        yield FeedResult(dead=[DeadLetter(name, 1, 0, str(exc), b"", fmt)], dead_records=1)
        return
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        # A corrupt or cut gzip stream: what was read before it stands, the rest is lost.
        reason = f"gzip input corrupt or cut short, the rest unread: {clean_error(str(exc))}"
        yield FeedResult(dead=[DeadLetter(name, 1, 0, reason, b"", fmt)], dead_records=1)
    yield parser.flush(name)


def _stdin_records(limits: Limits) -> Iterator[Chunk]:
    """Standard input as JSON lines (streamed; suits `tail -f audit.log | secretwatch ...`)."""
    yield from line_records(sys.stdin.buffer, max_line=limits.max_line_bytes)
