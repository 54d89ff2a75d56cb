"""The source registry is the one list of sources; the record's `Source` type must agree."""

from __future__ import annotations

from typing import get_args

from pipeline import config, record
from pipeline.reports import inventory
from pipeline.sources import SOURCES


def test_the_record_type_names_exactly_the_registered_sources_in_order() -> None:
    assert tuple(SOURCES) == get_args(record.Source) == record.SOURCES
    assert get_args(inventory.Source) == record.SOURCES  # the inventory file's own spelling


def test_each_registered_spec_is_filed_under_its_own_name() -> None:
    assert all(spec.name == name for name, spec in SOURCES.items())


def test_config_accepts_backend_names_for_the_registered_sources_only() -> None:
    names = dict.fromkeys(SOURCES, "b")
    assert config.Config(backends=names).backends == names
