"""What every source parser shares: the record it receives, the result it returns, and the
generic driver for stateless formats (one JSON document in, zero or more events out).

A parser never raises on bad input: each record either contributes to events, is skipped
as well-formed but not about secrets (counted by reason), or becomes a `DeadLetter` that
names the file, line, offset and reason. Counted in audit records (a CloudTrail object of
N records counts N; a line or document that cannot be read counts one):
`consumed + skipped + dead == records read`, and each dead record is one dead letter.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from pipeline.errors import NotSecretAccess, ParseError
from pipeline.errortext import clean_error
from pipeline.record import EventRow
from pipeline.redact import redact_raw

# One framed record: its raw bytes (a memoryview where a caller framed it so),
# 1-based line number, byte offset in the file.
Record = tuple[bytes | memoryview, int, int]


@dataclass(slots=True)
class DeadLetter:
    """A record that could not be turned into events, kept with everything needed to fix it."""

    file: str
    line: int
    offset: int
    reason: str
    raw: bytes
    format: str | None = None
    index: str | None = None

    @classmethod
    def of(
        cls, record: Record, file: str, reason: str, fmt: str | None, index: str | None = None
    ) -> DeadLetter:
        raw, line, offset = record
        return cls(file, line, offset, reason, redact_raw(bytes(raw)), fmt, index)

    def where(self) -> str:
        idx = f" {self.index}" if self.index else ""
        return f"{self.file}:{self.line} (byte {self.offset}){idx}"


@dataclass(slots=True)
class FeedResult:
    rows: list[EventRow] = field(default_factory=list)
    # (line, offset) of the record each row came from, in step with `rows`.
    where: list[tuple[int, int]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    # Per-record tallies: each record fed ends in exactly one of these three.
    consumed: int = 0
    skipped_records: int = 0
    dead_records: int = 0
    # Events moved to dead letters for an implausible time (pipeline/timewindow.py); their
    # records still count as consumed.
    quarantined: int = 0

    def extend(self, other: FeedResult) -> None:
        self.rows.extend(other.rows)
        self.where.extend(other.where)
        self.quarantined += other.quarantined
        self.dead.extend(other.dead)
        self.skipped.update(other.skipped)
        self.consumed += other.consumed
        self.skipped_records += other.skipped_records
        self.dead_records += other.dead_records

    @property
    def accounted(self) -> int:
        return self.consumed + self.skipped_records + self.dead_records


class Parser(Protocol):
    """Turns framed records of one file into events. Stateful parsers (Vault pairs request
    and response lines) hold records back until `flush`; `pending_position` tells the follower
    the earliest (byte offset, line) not yet fully turned into events."""

    def feed(self, records: list[Record], file: str) -> FeedResult: ...

    def flush(self, file: str) -> FeedResult: ...

    def pending_position(self) -> tuple[int, int] | None: ...


ParseFn = Callable[[dict[str, Any], str | None], list[EventRow]]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A registry entry: how to recognise a format and how to make a parser for it.
    `prefixed`: its lines may start with a short text prefix, which its parser skips."""

    name: str
    looks_like: Callable[[dict[str, Any]], bool]
    new_parser: Callable[[str | None], Parser]
    description: str
    prefixed: bool = False


# A line may carry a short text before its JSON: Vault's audit devices write their `prefix`
# option in front of every entry (`vault-audit: {"type":...}`).
PREFIX_WITHIN = 64
_NOT_PREFIX = b' \t\r\n{}[],"'  # how a line of indented or concatenated JSON may start


def json_start(raw: bytes) -> int:
    """Where a line's JSON object starts: 0, or after a short text prefix (at most
    `PREFIX_WITHIN` bytes, not starting as JSON or indentation would, holding no quote).

    >>> json_start(b'vault-audit: {"type":"request"}'), json_start(b'{"a":1}')
    (13, 0)
    >>> json_start(b'  {"a":1}'), json_start(b'"key": {"a":1}'), json_start(b'not json')
    (0, 0, 0)
    """
    if raw[:1] == b"{":
        return 0
    at = raw.find(b'{"', 1, PREFIX_WITHIN + 2)
    if at < 0 or raw[0] in _NOT_PREFIX or b'"' in raw[:at]:
        return 0
    return at


def unwrap(doc: object) -> Iterator[tuple[str | None, object]]:
    """The audit records inside one JSON document, with a label saying where each sat.

    Handles JSON arrays, CloudTrail S3 objects `{"Records": [...]}`, Azure diagnostic exports
    `{"records": [...]}` (storage accounts, Event Hubs), EventBridge envelopes (`detail`), and
    Kubernetes `EventList`s (`items`).

    >>> [i for i, _ in unwrap({"Records": [{}, {}]})]
    ['Records[0]', 'Records[1]']
    >>> [i for i, _ in unwrap({"records": [{"category": "AuditEvent"}]})]
    ['records[0]']
    """
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            yield f"[{i}]", item
    elif isinstance(doc, dict) and isinstance(doc.get("Records", doc.get("records")), list):
        key = "Records" if "Records" in doc else "records"
        for i, item in enumerate(doc[key]):
            yield f"{key}[{i}]", item
    elif (
        isinstance(doc, dict)
        and doc.get("kind") == "EventList"
        and isinstance(doc.get("items"), list)
    ):
        for i, item in enumerate(doc["items"]):
            yield f"items[{i}]", item
    elif isinstance(doc, dict) and "detail-type" in doc and isinstance(doc.get("detail"), dict):
        yield "detail", doc["detail"]
    else:
        yield None, doc


def decode(raw: bytes | memoryview) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not valid JSON: {exc}") from None


def document_source(
    name: str, looks_like: Callable[[dict[str, Any]], bool], parse: ParseFn, description: str
) -> SourceSpec:
    """Registry entry for a stateless format: one JSON document in, events out."""
    return SourceSpec(
        name, looks_like, lambda backend: DocumentParser(name, parse, backend), description
    )


@dataclass
class DocumentParser:
    """Driver for stateless formats: decode, unwrap, parse each item, account for each
    (a document holding N audit records counts N)."""

    name: str
    parse: ParseFn
    backend: str | None = None
    guess: Callable[[dict[str, Any]], str | None] | None = None

    def feed(self, records: list[Record], file: str) -> FeedResult:
        out = FeedResult()
        for record in records:
            try:
                doc = decode(record[0])
                if _may_repeat_keys(record[0], doc):
                    doc = decode_marking_repeats(record[0])
            except ParseError as exc:
                out.dead.append(DeadLetter.of(record, file, str(exc), self.name))
                out.dead_records += 1
                continue
            self._parse_doc(doc, record, file, out)
        return out

    def _parse_doc(self, doc: object, record: Record, file: str, out: FeedResult) -> None:
        """Each audit record inside the document counts once: consumed if it became events,
        skipped, or dead. An empty container counts as one skipped record."""
        items = 0
        for index, item in unwrap(doc):
            items += 1
            try:
                if not isinstance(item, dict):
                    raise ParseError(f"expected a JSON object, got {type(item).__name__}")
                rows = self.parse(item, self.backend)
                if isinstance(item, Repeated):
                    rows = [row._replace(note=_join(row.note, REPEATED_NOTE)) for row in rows]
                if rows:
                    out.rows.extend(rows)
                    out.where.extend([(record[1], record[2])] * len(rows))
                    out.consumed += 1
                else:
                    out.skipped["record names no access"] += 1
                    out.skipped_records += 1
            except NotSecretAccess as exc:
                out.skipped[str(exc)] += 1
                out.skipped_records += 1
            except ParseError as exc:
                reason = self._reason(exc, item)
                out.dead.append(DeadLetter.of(record, file, reason, self.name, index))
                out.dead_records += 1
            except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
                # The message may quote a value (`invalid literal for int(): '...'`).
                reason = f"unexpected shape ({type(exc).__name__}: {clean_error(str(exc))})"
                out.dead.append(DeadLetter.of(record, file, reason, self.name, index))
                out.dead_records += 1
        if not items:
            out.skipped["empty document"] += 1
            out.skipped_records += 1

    def _reason(self, exc: ParseError, item: object) -> str:
        other = self.guess(item) if self.guess and isinstance(item, dict) else None
        if other and other != self.name:
            return f"{exc} (looks like a {other} record; use --format {other} or split the file)"
        return str(exc)

    def flush(self, file: str) -> FeedResult:
        return FeedResult()

    def pending_position(self) -> tuple[int, int] | None:
        return None


# Duplicate keys: JSON parsers take the last value, other tools the first, so a record with
# a key twice can say one thing to secretwatch and another to the next reader. Its events
# carry this note; they are not dropped (the record is otherwise well-formed).
REPEATED_NOTE = "record repeats a JSON key (the last value was taken)"
_KEY_END = re.compile(rb'"\s*:')
_ESCAPED_KEY_END = re.compile(rb'\\"\s*:')


class Repeated(dict[str, object]):
    """A decoded object that repeated a key, itself or in an object inside it."""


def _may_repeat_keys(raw: bytes | memoryview, doc: object) -> bool:
    """Cheap test: more `"...":` key ends in the bytes than keys in the decoded value."""
    data = bytes(raw)
    ends = len(_KEY_END.findall(data)) - len(_ESCAPED_KEY_END.findall(data))
    return ends > _count_keys(doc)


def _count_keys(doc: object) -> int:
    count, stack = 0, [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            count += len(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def decode_marking_repeats(raw: bytes | memoryview) -> object:
    """Decode again (rare: only when `_may_repeat_keys`), marking each object that repeats
    a key, or holds one that does, as `Repeated`.

    >>> doc = decode_marking_repeats(b'{"a": {"b": 1, "b": 2}, "c": {}}')
    >>> isinstance(doc, Repeated), isinstance(doc["a"], Repeated), isinstance(doc["c"], Repeated)
    (True, True, False)
    """

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        inner = any(_marked(v) for _, v in items)
        made: dict[str, object] = (
            Repeated(items) if inner or len({k for k, _ in items}) < len(items) else {}
        )
        if not isinstance(made, Repeated):
            made.update(items)
        return made

    try:
        return json.loads(bytes(raw), object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not valid JSON: {exc}") from None


def _marked(value: object) -> bool:
    if isinstance(value, list):
        return any(_marked(v) for v in value)
    return isinstance(value, Repeated)


def _join(note: str | None, more: str) -> str:
    return f"{note}; {more}" if note else more


def text(value: object, field: str, source: str) -> str | None:
    """A string field, or None; anything else in a string slot is a shape error naming the
    field.

    >>> text(3, "userAgent", "k8s")
    Traceback (most recent call last):
    pipeline.errors.ParseError: k8s `userAgent` must be a string, got int
    """
    if value is None or isinstance(value, str):
        return value
    raise ParseError(f"{source} `{field}` must be a string, got {type(value).__name__}")


def obj(value: object, what: str) -> dict[str, Any]:
    """A nested object, or {} when absent; anything else is a shape error naming the field."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise ParseError(f"`{what}` must be an object, got {type(value).__name__}")
