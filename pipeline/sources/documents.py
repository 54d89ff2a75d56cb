"""Whole-document framing: which framing a file has (`sniff`), the top-level JSON values of
a pretty-printed or concatenated JSON file (with stray text between them), and the records
embedded in a YAML file.

Apart from `framing` (input reading and line framing, which stream) because these cut a
whole file held in memory; `sniff` lives here because it tells documents from lines with
`document_end`. `framing` imports this module, so this module imports nothing from it.
Only unparseable YAML raises.
"""

from __future__ import annotations

import re

import orjson
import yaml

from pipeline.errors import ParseError
from pipeline.jsonscan import skip_ws
from pipeline.sources.base import Record, json_start


def sniff(head: bytes, name: str, at_eof: bool) -> str:
    r"""'yaml', 'lines' (JSON lines) or 'documents' (pretty-printed or concatenated JSON).

    Documents when the first JSON value is a valid document spanning several lines; else
    JSON lines as soon as one of the first lines is a whole JSON object on its own, so a few
    broken lines never turn a JSON-lines file into one unreadable document. A file whose
    first line does not end within the head (a one-line CloudTrail object) is lines too.

    >>> sniff(b'{"a": 1}\n{"b": "cut\n{"c": 3}\n', "x.log", True)
    'lines'
    >>> sniff(b'{\n  "a": 1\n}\n{\n  "b": 2\n}\n', "x.json", True)
    'documents'
    """
    if name.endswith((".yml", ".yaml")):
        return "yaml"
    pieces = head.split(b"\n")
    if not at_eof:
        pieces.pop()  # may be cut mid-line
    lines = [p for p in pieces if p.strip()][:50]
    if not lines:
        return "lines"
    start = _first_value(head)
    if start is not None:
        end, broken = document_end(head, start)
        if (end < len(head) or at_eof) and not broken and b"\n" in head[start:end]:
            try:
                orjson.loads(head[start:end])
                return "documents"
            except orjson.JSONDecodeError:
                pass
    if any(_object_line(line) for line in lines):
        return "lines"
    return "documents"


def _first_value(data: bytes) -> int | None:
    """Where the first line that starts (after blanks) with `{` or `[` starts it."""
    match = _VALUE_START.search(data)
    return match.start(1) if match else None


_VALUE_START = re.compile(rb"(?m)^[ \t]*([{\[])")


def _object_line(line: bytes) -> bool:
    """A whole, non-empty JSON object on one unindented line, perhaps after a short text
    prefix (`json_start`): the mark of JSON lines (pretty-printers indent nested objects).

    >>> _object_line(b'vault-audit: {"a": 1}'), _object_line(b'  {"a": 1}')
    (True, False)
    """
    start = json_start(line)
    if line[start : start + 1] != b"{":
        return False
    try:
        value = orjson.loads(line[start:])
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and bool(value)


def document_records(data: bytes) -> list[Record]:
    r"""Top-level JSON values of `data`, plus each stray non-JSON line as its own record.

    A broken value (a string cut by a line end, a line that starts a new object where none
    may start) ends where it breaks, so it costs itself only:

    >>> [bytes(r) for r, _, _ in document_records(b'{"a": "cut\n{"b": 2}\n')]
    [b'{"a": "cut', b'{"b": 2}']
    """
    records: list[Record] = []
    i, n, line, counted = 0, len(data), 1, 0
    while True:
        i = skip_ws(data, i)
        if i >= n:
            return records
        line += data.count(b"\n", counted, i)
        counted = i
        if data[i] in b"{[":
            end, _ = document_end(data, i)
        else:
            nl = data.find(b"\n", i)
            end = n if nl < 0 else nl
        records.append((data[i:end].rstrip(b"\r\n"), line, i))
        i = end


_OUTSIDE = re.compile(rb'["{}\[\]\n]')
_INSIDE = re.compile(rb'["\\\n]')


def document_end(data: bytes, start: int) -> tuple[int, bool]:
    r"""(index just past the JSON value at `start`, whether it is broken).

    Bracket matching that knows strings, without validating. A JSON string holds no raw
    line break, so one ends a string as broken; and a line starting with `{` or `[` where
    no value may start (inside an object, not after a `:`; inside an array, not after `,`
    or `[`) ends a broken value before that line: a cut JSON line never swallows the next.

    >>> document_end(b'{"a": "}"} tail', 0)
    (10, False)
    >>> document_end(b'{"a": 1,\n{"b": 2}', 0)
    (8, True)
    """
    n = len(data)
    stack = bytearray()
    broken = False
    i = start
    while True:
        match = _OUTSIDE.search(data, i)
        if match is None:
            return n, True
        j = match.start()
        c = data[j]
        if c == 0x22:  # a string: find its closing quote
            k = j + 1
            while True:
                inner = _INSIDE.search(data, k)
                if inner is None:
                    return n, True
                k = inner.start()
                if data[k] == 0x5C:
                    k += 2
                    continue
                if data[k] == 0x0A:
                    broken = True  # cut: the line ends the string
                break
            i = k + 1 if data[k] != 0x0A else k
            continue
        if c == 0x0A:
            if (
                j + 1 < n
                and data[j + 1] in b"{["
                and stack
                and not _may_open(data, j, start, stack)
            ):
                return j, True
            i = j + 1
            continue
        if c in b"{[":
            stack.append(c)
        else:
            if stack.pop() != (0x7B if c == 0x7D else 0x5B):
                broken = True
            if not stack:
                return j + 1, broken
        i = j + 1


def _may_open(data: bytes, newline: int, start: int, stack: bytearray) -> bool:
    """May a value open right after `newline`, inside the innermost open bracket?"""
    k = newline - 1
    while k > start and data[k] in b" \t\r\n":
        k -= 1
    prev = data[k]
    return prev == 0x3A if stack[-1] == 0x7B else prev in b",["


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
    except RecursionError:
        raise ParseError("not valid YAML: nested too deep (depth limit exceeded)") from None
    if isinstance(doc, dict) and isinstance(doc.get("Tests"), list):
        logs = [t.get("Log") for t in doc["Tests"] if isinstance(t, dict) and "Log" in t]
        starts = [m.start() for m in _LOG_KEY.finditer(data)]
        records: list[Record] = []
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
