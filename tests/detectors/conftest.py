from __future__ import annotations

import pytest
from world import frame, world

from detectors.baseline import Baselines
from detectors.engine import train
from detectors.settings import DetectorsConfig


@pytest.fixture(scope="session")
def history():
    return frame(world())


@pytest.fixture(scope="session")
def trained_once(history) -> Baselines:
    return train(history, DetectorsConfig())


@pytest.fixture
def trained(trained_once: Baselines) -> Baselines:
    """A private copy: detectors and updates may change it."""
    copy = Baselines.from_rows(trained_once.to_rows(), **trained_once.meta())
    copy.model = trained_once.model
    return copy
