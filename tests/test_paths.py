"""pipeline/paths.py: a file standing where a folder is needed is named."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import pipeline.paths
from pipeline.paths import blocking_file, make_folder, not_a_folder


def test_doctests() -> None:
    assert doctest.testmod(pipeline.paths).failed == 0


@pytest.mark.parametrize("under", ["", "sub", "sub/deeper"])
def test_make_folder_names_the_file_in_the_way(tmp_path: Path, under: str) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError) as caught:
        make_folder(blocker / under if under else blocker)
    assert str(caught.value) == f"{blocker} is a file, not a directory"


def test_make_folder_makes_and_keeps_folders(tmp_path: Path) -> None:
    make_folder(tmp_path / "a" / "b")
    make_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


def test_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert not_a_folder(tmp_path / "afile" / "x.log") == (
        f"{tmp_path / 'afile'} is a file, not a directory"
    )
    assert not_a_folder(tmp_path / "missing" / "x.log") is None
    assert blocking_file(tmp_path / "x.log") is None
