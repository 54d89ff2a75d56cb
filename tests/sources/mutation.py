"""Shared by the per-source robustness tests: mutate one field of a real record."""

from __future__ import annotations

import copy

from hypothesis import strategies as st

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
