"""The HTML report in a real headless browser (Debian's chromium, which scripts/test
installs): it renders with no console error, loads nothing from the network, and shows
every section and every chart. The full-page screenshot is kept as a CI artifact."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
SECTIONS = ["summary", "controls", "coverage", "secrets", "identities", "grants", "unused",
            "rotation", "ownership", "alerts", "method"]  # fmt: skip
CHARTS = ["chart-findings", "chart-coverage", "chart-activity", "chart-grants"]
_IMAGES = """() => [...document.images].map(i => ({id: i.id, complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}))"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian chromium is not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Visit:
    problems: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    sections: dict[str, float] = field(default_factory=dict)  # id -> rendered height
    images: list[dict] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)


def visit(html: Path, screenshot: Path | None = None) -> Visit:
    """Open `html` in headless chromium and record what a person would notice."""
    sync_api = pytest.importorskip("playwright.sync_api")
    seen = Visit()

    def route(r) -> None:  # noqa: ANN001 - playwright Route
        seen.requested.append(r.request.url)
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            seen.problems.append(f"network request: {r.request.url}")
            r.abort()

    def console(message) -> None:  # noqa: ANN001 - playwright ConsoleMessage
        if message.type == "error":
            seen.problems.append(f"console: {message.text}")

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", console)
            page.on("pageerror", lambda e: seen.problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: seen.problems.append(f"failed: {r.url}"))
            page.route("**/*", route)
            page.goto(html.as_uri(), wait_until="load")
            for section in SECTIONS:
                found = page.locator(f"section#{section}")
                box = found.bounding_box() if found.count() else None
                seen.sections[section] = box["height"] if box else 0.0
            seen.images = page.evaluate(_IMAGES)
            seen.cards = page.locator("#summary .card").all_inner_texts()
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen


def test_report_renders_in_chromium(quarter_report: Path) -> None:
    shot = ARTIFACTS / "report-screenshot.png"
    seen = visit(quarter_report / "report.html", shot)
    assert seen.problems == []
    assert all(height > 40 for height in seen.sections.values()), seen.sections
    assert sorted(i["id"] for i in seen.images) == sorted(CHARTS)
    for image in seen.images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["shown"] > 200, image
    assert any("unused secrets" in c and c.strip().startswith("3") for c in seen.cards)
    assert seen.requested and all(u.startswith("file:") for u in seen.requested)
    assert shot.stat().st_size > 50_000


def test_the_check_sees_a_broken_page(quarter_report: Path, tmp_path: Path) -> None:
    """The same checks on a damaged copy find every kind of damage."""
    page = (quarter_report / "report.html").read_text()
    page = page.replace('<section id="rotation">', '<section id="rotated">', 1)
    page = page.replace('src="data:image/svg+xml;base64,', 'src="data:image/svg+xml;base64,AA', 1)
    page = page.replace("</body>", '<script>console.error("boom"); undefined_call();</script>'
                        '<img id="remote" src="https://example.com/x.png"></body>')  # fmt: skip
    broken = tmp_path / "report.html"
    broken.write_text(page)
    seen = visit(broken)
    assert "console: boom" in seen.problems
    assert any(p.startswith("page error:") and "undefined_call" in p for p in seen.problems)
    assert "network request: https://example.com/x.png" in seen.problems
    assert seen.sections["rotation"] == 0.0
    broken_images = [i["id"] for i in seen.images if not i["width"]]
    assert set(broken_images) == {"chart-findings", "remote"}
