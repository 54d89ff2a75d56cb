"""Cut input bytes into records: read a file (plain, gzip or a pipe) and cut JSON lines
here; `pipeline.sources.documents` tells how a file is framed (`sniff`) and cuts
concatenated or pretty-printed JSON documents and Panther-style YAML test files.

Framing never judges content: a stray text line becomes a record that the parser then
dead-letters with its line number. Only a file-level failure (unparseable YAML) raises.
Input over a cap (`Limits`: a line or document too long, a decompression bomb) becomes a
`Cut`, which the caller turns into one dead letter; memory stays bounded by the caps.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from pipeline.errors import InputError
from pipeline.limits import MAX_LINE_BYTES, Limits
from pipeline.sources.base import Record
from pipeline.sources.documents import document_records, sniff, yaml_records

CHUNK_BYTES = 256 << 10  # larger chunks cost more in copying the carried-over tail
HEAD_BYTES = 65536  # read to decide how a file is framed
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Cut:
    """Input framing refused (over a cap): where it starts, why, and its first bytes."""

    line: int
    offset: int
    reason: str
    head: bytes


Chunk = list[Record] | Cut


class _Counting(io.RawIOBase):
    """Counts the bytes read from a file: progress and the compression ratio need the
    compressed position, and pipes (FIFOs, process substitution) cannot `tell()`."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n: int = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Input:
    """A file's bytes (gunzipped when it starts with gzip's magic number), with `read_bytes`:
    how many bytes of the file itself have been read so far.

    One buffer between the file and the reader: a plain file is read through the buffer
    that sniffed its magic number (a second one would copy every byte once more)."""

    def __init__(self, path: Path) -> None:
        try:
            raw = path.open("rb", buffering=0)
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a directory") from None
        except NotADirectoryError:
            raise InputError(f"{path}: a part of the path is not a directory") from None
        except PermissionError:
            raise InputError(f"{path}: permission denied") from None
        self.counting = _Counting(raw)
        plain = io.BufferedReader(self.counting, CHUNK_BYTES)
        self.gzip = plain.peek(2)[:2] == _GZIP_MAGIC
        reader = plain
        if self.gzip:
            inflated = gzip.GzipFile(fileobj=plain, mode="rb")
            reader = io.BufferedReader(inflated, CHUNK_BYTES)  # type: ignore[arg-type]
        self._plain = plain
        self._reader = reader
        self.read = reader.read
        self.read1 = reader.read1

    @property
    def read_bytes(self) -> int:
        """Bytes of the file read so far (compressed bytes for gzip; no `tell()` needed)."""
        return self.counting.count

    @property
    def closed(self) -> bool:
        return self._plain.closed

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._plain.close()

    def __enter__(self) -> _Input:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_binary(path: Path) -> BinaryIO:
    """Open a file (or FIFO) for reading bytes, transparently gunzipping by magic number."""
    return _Input(path)  # type: ignore[return-value]


class Reader(Protocol):
    """What `line_records` reads from: a file, a pipe, or bytes pushed back in front."""

    def read(self, size: int = -1, /) -> bytes: ...


def line_records(
    stream: Reader,
    line: int = 1,
    offset: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
    max_line: int = MAX_LINE_BYTES,
) -> Iterator[Chunk]:
    """Complete lines of a stream as records, a chunk at a time; a last line without a
    newline counts at end of stream (files written whole, such as CloudTrail objects).

    A line longer than `max_line` is a `Cut` (its first bytes only are kept) and skipped to
    its newline, so memory stays bounded; a stream that raises `InputTooLarge` ends with one.
    """
    chunk_bytes = min(chunk_bytes, max_line)
    rest = b""
    parts: list[bytes] = []  # more of an unfinished line: joined once, when it ends
    size = 0  # of rest + parts
    skipping = False  # inside a line already cut
    read = getattr(stream, "read1", stream.read)  # read1: return what a pipe has, not wait
    while True:
        try:
            data = read(chunk_bytes)
        except InputTooLarge as exc:
            yield Cut(line, offset, str(exc), b"".join([rest, *parts])[:_CUT_HEAD])
            return
        if not data:
            break
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                offset += len(data)
                continue
            offset, line, skipping = offset + nl + 1, line + 1, False
            data = data[nl + 1 :]
        nl = data.find(b"\n")
        if nl < 0 or size + nl > max_line:
            parts.append(data if nl < 0 else data[:nl])
            size += len(parts[-1])
            if size > max_line:
                head = (rest[:_CUT_HEAD] + parts[0][:_CUT_HEAD])[:_CUT_HEAD]
                reason = f"line longer than {max_line:,} bytes (ingest.limits.max_line_bytes)"
                yield Cut(line, offset, reason, head)
                offset += size
                rest, parts, size = b"", [], 0
                if nl < 0:
                    skipping = True
                    continue
                offset, line = offset + 1, line + 1
                data = data[nl + 1 :]
            else:
                continue
        if parts:
            rest, parts = b"".join([rest, *parts]), []
        start = 0
        if rest:  # the carried-over line ends in `data`: join that line only
            records, _, line, offset = split_lines(rest + data[: nl + 1], line, offset)
            start = nl + 1
        else:
            records = []
        more, rest, line, offset = split_lines(data, line, offset, start)
        records += more
        size = len(rest)
        if records:
            yield records
    if skipping:
        return
    if parts:
        rest = b"".join([rest, *parts])
    if rest.strip():
        yield [(rest.rstrip(b"\r"), line, offset)]  # a last line without a newline


_CUT_HEAD = 4096  # bytes of a cut line kept for its dead letter


class InputTooLarge(Exception):  # noqa: N818 - a signal between the reader and framing
    """Raised by a guarded read when a stream inflates past its caps."""


def split_lines(
    data: bytes, line: int, offset: int, start: int = 0
) -> tuple[list[Record], bytes, int, int]:
    """Split `data` from `start` (at file `offset`) into complete-line records; return them,
    the incomplete tail, and the line number and offset where that tail starts.

    Records are bytes: every parser reads a line as bytes, and a slice is one copy where a
    memoryview would be an object and then a copy. Blank lines are not records (but still
    count for line numbers).

    >>> recs, tail, line, off = split_lines(b'{"a":1}\\r\\n\\n{"b"', 1, 0)
    >>> recs, tail, line, off
    ([(b'{"a":1}', 1, 0)], b'{"b"', 3, 10)
    >>> split_lines(b'x\\n{"a":1}\\n', 2, 100, start=2)
    ([(b'{"a":1}', 2, 100)], b'', 3, 108)
    """
    find = data.find
    records: list[Record] = []
    append = records.append
    base = offset - start
    pos = start
    while True:
        nl = find(b"\n", pos)
        if nl < 0:
            break
        end = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
        if end > pos and (data[pos] not in _BLANK or not data[pos:end].isspace()):
            append((data[pos:end], line, base + pos))
        line += 1
        pos = nl + 1
    return records, data[pos:], line, base + pos


_BLANK = b" \t\r\x0b\x0c"


def file_records(
    path: Path,
    on_bytes: Callable[[int], None] | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen
) -> Iterator[Chunk]:
    """All records of one file (plain, gzip or a pipe), in chunks, and a `Cut` for input
    over `limits`; `on_bytes` hears how many bytes of the file (compressed, for gzip) have
    been read so far."""
    with _Input(path) as stream:
        guarded = _Guarded(stream, limits)
        try:
            head = guarded.read(HEAD_BYTES)
        except InputTooLarge as exc:
            yield Cut(1, 0, str(exc), b"")
            return
        mode = sniff(head, path.name.removesuffix(".gz"), len(head) < HEAD_BYTES)
        if mode == "lines":
            for chunk in line_records(_Rewound(head, guarded), max_line=limits.max_line_bytes):
                yield chunk
                if on_bytes:
                    on_bytes(stream.read_bytes)
            return
        try:
            data = head + guarded.read_upto(limits.max_document_bytes + 1 - len(head))
        except InputTooLarge as exc:
            yield Cut(1, 0, str(exc), head[:_CUT_HEAD])
            return
        if on_bytes:
            on_bytes(stream.read_bytes)
        if len(data) > limits.max_document_bytes:
            reason = (
                f"{mode} file larger than {limits.max_document_bytes:,} bytes "
                "(ingest.limits.max_document_bytes); split it or raise the limit"
            )
            yield Cut(1, 0, reason, data[:_CUT_HEAD])
            return
    records = yaml_records(data) if mode == "yaml" else document_records(data)
    for i in range(0, len(records), 4096):
        yield records[i : i + 4096]


class _Guarded:
    """Reads an input, raising `InputTooLarge` once it inflates past its caps."""

    def __init__(self, stream: _Input, limits: Limits) -> None:
        self.stream = stream
        self.limits = limits
        self.inflated = 0

    def read(self, size: int = -1) -> bytes:
        return self._count(self.stream.read(size))

    def read1(self, size: int = -1) -> bytes:
        return self._count(self.stream.read1(size))

    def read_upto(self, size: int) -> bytes:
        """Up to `size` bytes (less only at the end of the input), in bounded reads."""
        parts, got = [], 0
        while got < size:
            data = self.read(min(CHUNK_BYTES, size - got))
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def _count(self, data: bytes) -> bytes:
        self.inflated += len(data)
        if not self.stream.gzip:
            return data
        limits = self.limits
        if self.inflated > limits.max_decompressed_bytes:
            raise InputTooLarge(
                f"gzip stream inflates past {limits.max_decompressed_bytes:,} bytes "
                "(ingest.limits.max_decompressed_bytes); rest of the file not read"
            )
        read = max(1, self.stream.read_bytes)
        if self.inflated > _RATIO_AFTER and self.inflated > limits.max_compression_ratio * read:
            raise InputTooLarge(
                f"gzip stream inflates {self.inflated / read:,.0f} times its size (over "
                f"ingest.limits.max_compression_ratio {limits.max_compression_ratio:g}): "
                "a decompression bomb? rest of the file not read"
            )
        return data


_RATIO_AFTER = 16 << 20  # the ratio is judged once this much has been inflated


class _Rewound:
    """A stream with already-read bytes pushed back in front (gzip streams cannot seek)."""

    def __init__(self, head: bytes, stream: Reader) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            if size < 0:
                return data + self._stream.read()
            return data + self._stream.read(max(0, size - len(data)))
        return self._stream.read(size)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readable(self) -> bool:
        return True
