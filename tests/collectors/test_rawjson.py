"""rawjson cuts valid JSON into its members' own bytes: whatever the spacing, line breaks,
escapes and nesting, the cut parts decode to what a decoder makes of the whole."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.collectors.rawjson import elements, members, one_line, value_of, without

scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=6), values, max_size=6)


def spaced(value: object, indent: int | None, ascii_only: bool) -> bytes:
    return json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()


@settings(max_examples=100, deadline=None)
@given(objects, st.sampled_from([None, 0, 2]), st.booleans(), st.data())
def test_members_and_without_agree_with_a_decoder(
    doc: dict[str, object], indent: int | None, ascii_only: bool, data: st.DataObject
) -> None:
    raw = b"  \n" + spaced(doc, indent, ascii_only)
    start = raw.index(b"{")
    assert [k for k, _, _ in members(raw, start)] == list(doc)
    drop = frozenset(data.draw(st.sets(st.sampled_from(list(doc) or ["x"]))))
    line = without(raw, start, drop)
    assert b"\n" not in line
    assert orjson.loads(line) == {k: v for k, v in doc.items() if k not in drop}


@settings(max_examples=60, deadline=None)
@given(st.lists(values, max_size=6), st.sampled_from([None, 1]))
def test_elements_of_the_last_items(items: list[object], indent: int | None) -> None:
    doc = {"kind": "EventList", "items": ["an earlier items, repeated"], "metadata": {}}
    raw = spaced(doc, indent, True)[:-1] + b', "items": ' + spaced(items, indent, False) + b"}"
    at = value_of(raw, 0, "items")
    assert at is not None
    assert [orjson.loads(one_line(raw[s:e])) for s, e in elements(raw, at)] == items


def test_a_repeated_member_is_kept_byte_for_byte() -> None:
    raw = b'{"a": 1,\n "b": {"c": 2, "c": 3}, "drop": "x", "a" :\t"\\u00e9"}'
    assert (
        without(raw, 0, frozenset({"drop"})) == b'{"a": 1,"b": {"c": 2, "c": 3},"a" :\t"\\u00e9"}'
    )
    assert value_of(raw, 0, "missing") is None
