"""Cut input bytes into records: JSON lines, concatenated or pretty-printed JSON documents
(with stray text between them), and Panther-style YAML test files.

Framing never judges content: a stray text line becomes a record that the parser then
dead-letters with its line number. Only a file-level failure (unparseable YAML) raises.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson
import yaml

from pipeline.errors import InputError, ParseError
from pipeline.jsonscan import skip_ws, value_end
from pipeline.sources.base import Record

CHUNK_BYTES = 256 << 10  # larger chunks cost more in copying the carried-over tail
_GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path) -> BinaryIO:
    """Open a file for reading bytes, transparently gunzipping by magic number."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    if raw.peek(2)[:2] == _GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]  # owns and closes the file
    return raw


def sniff(head: bytes, name: str, at_eof: bool) -> str:
    """'yaml', 'lines' (JSON lines) or 'documents' (pretty-printed or concatenated JSON).

    JSON lines when most of the first complete lines decode on their own. A file whose first
    line does not end within the head (a one-line CloudTrail object) is read as lines too.
    """
    if name.endswith((".yml", ".yaml")):
        return "yaml"
    pieces = head.split(b"\n")
    if not at_eof:
        pieces.pop()  # may be cut mid-line
    lines = [p for p in pieces if p.strip()][:5]
    if not lines:
        return "lines"
    good = 0
    for line in lines:
        try:
            orjson.loads(line)
            good += 1
        except orjson.JSONDecodeError:
            pass
    return "lines" if good * 2 > len(lines) else "documents"


def line_records(
    stream: BinaryIO, line: int = 1, offset: int = 0, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[list[Record]]:
    """Complete lines of a stream as records, a chunk at a time; a last line without a
    newline counts at end of stream (files written whole, such as CloudTrail objects)."""
    rest = b""
    read = getattr(stream, "read1", stream.read)  # read1: return what a pipe has, not wait
    while True:
        data = read(chunk_bytes)
        if not data:
            break
        records, rest, line, offset = split_lines(rest + data, line, offset)
        if records:
            yield records
    if rest.strip():
        yield [(rest.rstrip(b"\r"), line, offset)]  # a last line without a newline


def split_lines(data: bytes, line: int, offset: int) -> tuple[list[Record], bytes, int, int]:
    """Split `data` into complete-line records; return them, the incomplete tail, and the
    line number and offset where that tail starts.

    Records are zero-copy memoryview slices of `data`: copying every line costs more than
    decoding it. Blank lines are not records (but still count for line numbers).

    >>> recs, tail, line, off = split_lines(b'{"a":1}\\r\\n\\n{"b"', 1, 0)
    >>> [(bytes(r), ln, o) for r, ln, o in recs], tail, line, off
    ([(b'{"a":1}', 1, 0)], b'{"b"', 3, 10)
    """
    view = memoryview(data)
    find = data.find
    records: list[Record] = []
    append = records.append
    pos = 0
    while True:
        nl = find(b"\n", pos)
        if nl < 0:
            break
        end = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
        if end > pos and (data[pos] not in _BLANK or not data[pos:end].isspace()):
            append((view[pos:end], line, offset + pos))
        line += 1
        pos = nl + 1
    return records, bytes(view[pos:]), line, offset + pos


_BLANK = b" \t\r\x0b\x0c"


def document_records(data: bytes) -> list[Record]:
    """Top-level JSON values of `data`, plus each stray non-JSON line as its own record."""
    records: list[Record] = []
    i, n, line, counted = 0, len(data), 1, 0
    while True:
        i = skip_ws(data, i)
        if i >= n:
            return records
        line += data.count(b"\n", counted, i)
        counted = i
        if data[i] in b"{[":
            end = value_end(data, i)
        else:
            nl = data.find(b"\n", i)
            end = n if nl < 0 else nl
        records.append((data[i:end].rstrip(b"\r"), line, i))
        i = end


_LOG_KEY = re.compile(rb"^\s*-?\s*Log:", re.MULTILINE)


def yaml_records(data: bytes) -> list[Record]:
    """Audit records embedded in YAML: Panther rule test cases (`Tests: - Log: {...}`), or
    a YAML list / mapping of records."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParseError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if isinstance(doc, dict) and isinstance(doc.get("Tests"), list):
        logs = [t.get("Log") for t in doc["Tests"] if isinstance(t, dict) and "Log" in t]
        starts = [m.start() for m in _LOG_KEY.finditer(data)]
        records = []
        for k, log in enumerate(logs):
            at = starts[k] if k < len(starts) else 0
            records.append((_dump(log), data.count(b"\n", 0, at) + 1, at))
        return records
    items = doc if isinstance(doc, list) else [doc]
    return [(_dump(item), 1, 0) for item in items if item is not None]


def _dump(value: object) -> bytes:
    try:
        return orjson.dumps(value, default=str)
    except TypeError as exc:
        raise ParseError(f"YAML value cannot be represented as JSON: {exc}") from None


def file_records(
    path: Path, on_bytes: Callable[[int], None] | None = None
) -> Iterator[list[Record]]:
    """All records of one file (plain or gzip), in chunks; `on_bytes` hears how many bytes
    of the file (compressed, for gzip) have been read so far."""
    with open_binary(path) as stream:
        raw = getattr(stream, "fileobj", None) or stream
        head = stream.read(65536)
        mode = sniff(head, path.name.removesuffix(".gz"), len(head) < 65536)
        if mode == "lines":
            for chunk in line_records(_Rewound(head, stream)):
                yield chunk
                if on_bytes:
                    on_bytes(raw.tell())
            return
        data = head + stream.read()
        if on_bytes:
            on_bytes(raw.tell())
    records = yaml_records(data) if mode == "yaml" else document_records(data)
    for i in range(0, len(records), 4096):
        yield records[i : i + 4096]


class _Rewound(io.RawIOBase):
    """A stream with already-read bytes pushed back in front (gzip streams cannot seek)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
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
