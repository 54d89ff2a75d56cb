"""Shared by the per-source tests: parse a file, find a row, mutate one field of a record."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import strategies as st

from pipeline.record import EventRow, to_event
from pipeline.sources.base import FeedResult, Record, SourceSpec
from pipeline.sources.framing import file_records
from pipeline.sources.vault import VaultParser

DELETE = object()  # as a mutation value: remove the field
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (dict keys and list indexes), for mutation."""
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        children = []
    found = [prefix] if prefix else []
    for key, child in children:
        found.extend(paths(child, (*prefix, key)))
    return found


def mutate(doc: dict, path: tuple, value: object) -> dict:
    """A deep copy of `doc` with the field at `path` replaced by `value` (or removed)."""
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is DELETE and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = None if value is DELETE else value
    return doc


def feed_file(spec: SourceSpec, path: Path, backend: str | None = None) -> FeedResult:
    """Frame and parse one file with a source's parser, flush it, and check every row
    against the AccessEvent contract."""
    out = FeedResult()
    parser = spec.new_parser(backend)
    for records in file_records(path):
        out.extend(parser.feed(records, str(path)))
    out.extend(parser.flush(str(path)))
    for row in out.rows:
        to_event(row)
    return out


def by_id(result: FeedResult, event_id: str) -> EventRow:
    (row,) = [r for r in result.rows if r.event_id == event_id]
    return row


def vault_records(*entries: dict) -> list[Record]:
    """Vault audit entries as the records framing would make of their lines."""
    out: list[Record] = []
    offset = 0
    for i, e in enumerate(entries, start=1):
        raw = json.dumps(e, separators=(",", ":")).encode()
        out.append((raw, i, offset))
        offset += len(raw) + 1
    return out


def vault_run(*entries: dict) -> FeedResult:
    """Feed the entries to one Vault parser and flush it."""
    parser = VaultParser()
    result = parser.feed(vault_records(*entries), "audit.log")
    result.extend(parser.flush("audit.log"))
    return result
