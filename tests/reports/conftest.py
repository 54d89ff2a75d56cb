"""Fixtures: the generated quarter in a DuckDB store, with its evidence files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import quarter_world as world

from pipeline.reports import period
from pipeline.reports.run import generate
from pipeline.reports.settings import ReportConfig
from pipeline.store.duckdb import DuckDBStore


@pytest.fixture(scope="session")
def quarter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `store.duckdb` (the world's events) and its evidence files."""
    folder = tmp_path_factory.mktemp("quarter")
    with DuckDBStore(folder / "store.duckdb") as store:
        store.write_batch(world.rows())
        alerts = world.alerts()
        store.save_detection([], {}, alerts, version=1)
        now = datetime(2026, 10, 2, tzinfo=UTC)
        for index, verdict in world.RESOLUTIONS.items():
            store.resolve_alert(alerts[index]["id"], verdict, "analyst", None, now)
    world.write_evidence(folder)
    return folder


@pytest.fixture(scope="session")
def quarter_config(quarter_dir: Path) -> ReportConfig:
    return ReportConfig(
        owners=quarter_dir / "owners.yaml",
        inventory=quarter_dir / "inventory.yaml",
        policies_dir=quarter_dir / "policies",
    )


@pytest.fixture(scope="session")
def quarter_report(quarter_dir: Path, quarter_config: ReportConfig,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    """The generated quarter's report folder (2026Q3)."""
    folder = tmp_path_factory.mktemp("quarter-report") / "2026Q3"
    with DuckDBStore(quarter_dir / "store.duckdb", read_only=True) as store:
        generate(store, "duckdb", period.quarter("2026Q3"), quarter_config, folder)
    return folder
