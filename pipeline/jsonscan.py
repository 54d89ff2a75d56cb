"""Byte-level JSON scanning that tolerates broken input (used by framing and redaction)."""

from __future__ import annotations

_WS = b" \t\r\n"


def value_end(raw: bytes, start: int) -> int:
    """Index just past the JSON value starting at `start`, or `len(raw)` if it is truncated.

    String-aware bracket matching only: it finds where a value ends without validating it,
    so a broken record still ends where its brackets close.

    >>> value_end(b'{"a": "}"} tail', 0)
    10
    """
    n = len(raw)
    if start >= n:
        return n
    first = raw[start]
    if first == 0x22:
        return _string_end(raw, start + 1)
    if first in (0x7B, 0x5B):
        depth, i = 0, start
        while i < n:
            c = raw[i]
            if c == 0x22:
                i = _string_end(raw, i + 1)
                continue
            if c in (0x7B, 0x5B):
                depth += 1
            elif c in (0x7D, 0x5D):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return n
    i = start
    while i < n and raw[i] not in b",}]\n":
        i += 1
    return i


def _string_end(raw: bytes, i: int) -> int:
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C:
            i += 2
            continue
        if c == 0x22:
            return i + 1
        i += 1
    return n


def skip_ws(raw: bytes, i: int) -> int:
    n = len(raw)
    while i < n and raw[i] in _WS:
        i += 1
    return i
