"""Fixtures of the API tests: the filled store (built once per session), a copy per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from served_store import build_store


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ingested, trained and detected once (see `build_store`)."""
    return build_store(tmp_path_factory.mktemp("api-store"))


@pytest.fixture
def store_path(template_store: Path, tmp_path: Path) -> Path:
    """This test's own copy of the filled store."""
    path = tmp_path / "store.duckdb"
    shutil.copy(template_store, path)
    return path
