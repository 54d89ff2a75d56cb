"""The raw bytes of a JSON document's parts, for the rare document whose bytes say more
than its decoded value: one that repeats a key. Parsers keep the last value and the source
parsers put a note on the event (`pipeline.sources.base.REPEATED_NOTE`); a collector that
re-serialized such a record would silently drop both the repeat and the note, so it
spools the record's own bytes instead.

Every function here expects JSON a decoder has already accepted: it walks brackets and
strings (`pipeline.jsonscan`), it does not validate.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from pipeline.jsonscan import skip_ws, value_end

_CLOSE_OBJECT, _CLOSE_ARRAY, _COMMA = 0x7D, 0x5D, 0x2C


def members(raw: bytes, start: int) -> Iterator[tuple[str, int, int]]:
    """(key, member start, value end) for each member of the object opening at `start`,
    repeats included, in order.

    >>> doc = b'{"a": 1, "b": [2], "a": 3}'
    >>> [(k, doc[s:e]) for k, s, e in members(doc, 0)]
    [('a', b'"a": 1'), ('b', b'"b": [2]'), ('a', b'"a": 3')]
    """
    i = skip_ws(raw, start + 1)
    while raw[i] != _CLOSE_OBJECT:
        key_end = value_end(raw, i)
        key = orjson.loads(raw[i:key_end])
        value = skip_ws(raw, skip_ws(raw, key_end) + 1)  # past the colon
        end = value_end(raw, value)
        yield key, i, end
        i = _next(raw, end)


def elements(raw: bytes, start: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each element of the array opening at `start`."""
    i = skip_ws(raw, start + 1)
    while raw[i] != _CLOSE_ARRAY:
        end = value_end(raw, i)
        yield i, end
        i = _next(raw, end)


def value_of(raw: bytes, start: int, key: str) -> int | None:
    """Where the value of the object's member `key` starts (the last one, as decoders take)."""
    found = None
    for name, at, _ in members(raw, start):
        if name == key:
            found = skip_ws(raw, skip_ws(raw, value_end(raw, at)) + 1)
    return found


def without(raw: bytes, start: int, drop: frozenset[str]) -> bytes:
    """The object opening at `start` as one line, its `drop` members left out, the others
    byte for byte."""
    kept = [raw[s:e].strip() for key, s, e in members(raw, start) if key not in drop]
    return one_line(b"{" + b",".join(kept) + b"}")


def one_line(raw: bytes) -> bytes:
    """Valid JSON on one line: a line break can only be whitespace between tokens (inside
    a string it must be escaped), so it becomes a space."""
    return raw.replace(b"\r", b" ").replace(b"\n", b" ").strip()


def _next(raw: bytes, end: int) -> int:
    i = skip_ws(raw, end)
    return skip_ws(raw, i + 1) if raw[i] == _COMMA else i
