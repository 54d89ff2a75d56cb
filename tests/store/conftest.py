"""Store fixtures, parametrized over backends: add a factory to BACKENDS and every contract
test in tests/store/test_store_contract.py runs against the new backend too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.store.base import Store
from pipeline.store.duckdb import DuckDBStore

# A factory makes an unopened store living under the given folder; calling it again with
# the same folder must give the same store (to test durability and read-only opening).
StoreFactory = Callable[..., Store]


def _duckdb(folder: Path, read_only: bool = False) -> Store:
    return DuckDBStore(folder / "store.duckdb", read_only=read_only)


BACKENDS = [pytest.param(_duckdb, id="duckdb")]


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    make = request.param

    def factory(read_only: bool = False) -> Store:
        return make(tmp_path, read_only=read_only)

    return factory


@pytest.fixture
def store(store_factory: StoreFactory) -> Iterator[Store]:
    opened = store_factory()
    opened.open()
    try:
        yield opened
    finally:
        opened.close()
