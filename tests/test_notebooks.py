"""Every notebook under notebooks/ runs top to bottom without error and shows what it is for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@dataclass(frozen=True)
class Expected:
    """What a notebook's outputs must show: texts (printed, or in a displayed value's plain
    text or HTML) and at least `figures` inline images."""

    texts: tuple[str, ...]
    figures: int = 0


EXPECTED = {
    "explore_fixtures.ipynb": Expected(("events stored",)),
    "baselines.ipynb": Expected(
        (
            "alerts table:",
            "<th>explanation</th>",
            "met: every attack kind caught",
            "the replay judged it against a norm of",
        ),
        figures=3,
    ),
}


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook"


def test_every_notebook_has_expectations() -> None:
    missing = sorted({p.name for p in NOTEBOOKS} - set(EXPECTED))
    assert not missing, f"add what {missing} must show to EXPECTED in {Path(__file__).name}"


def _texts(output: dict) -> list[str]:
    if output["output_type"] == "stream":
        return [output["text"]]
    data = output.get("data", {})
    return [data[kind] for kind in ("text/plain", "text/html") if kind in data]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's own, not ours
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    expected = EXPECTED.get(path.name, Expected(()))
    shown = "\n".join(text for o in outputs for text in _texts(o))
    missing = [text for text in expected.texts if text not in shown]
    assert not missing, f"{path.name} did not show {missing}"
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= expected.figures, f"{path.name} drew {figures} figures"
