"""Fixtures shared by every test under tests/."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["services"]


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """conftest.py files hold fixtures, not doctests: collected as modules (for
    --doctest-modules) each is imported under the one name `conftest`, and the one of a
    folder sorted before this file (tests/api) then clashes with this one."""
    return True if collection_path.name == "conftest.py" else None
