"""The `retention:` section: defaults, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError


def test_defaults_keep_400_days_hot_and_seven_years_archived(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("retention: {}\n")
    retention = load_config(config).retention
    assert (retention.hot_days, retention.archive_years, retention.archive) == (400, 7, None)


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ("{archive: {path: /a}}", "key_file"),
        ("{archive: {path: /a, key_file: k, key_env: K}}", "exactly one"),
        ("{hot_days: 0}", "hot_days"),
        ("{archive: {path: /a, key_env: K, schedule_minutes: 0}}", "schedule_minutes"),
        ("{keep: 3}", "keep"),
    ],
)
def test_a_bad_section_names_the_key(tmp_path: Path, section: str, named: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"retention: {section}\n")
    with pytest.raises(ConfigError, match="retention") as caught:
        load_config(config)
    assert named in str(caught.value)
