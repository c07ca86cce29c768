"""The HTML transparency report in real Chromium (Debian's, /usr/bin/chromium, through Playwright): opened from
disk with JavaScript off and every request beyond the file itself blocked, each figure's chart is drawn (a
visible SVG of non-zero size), and a screenshot of the page shows the charts' colours."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from safehold.transparency.charts import PALETTE, chart_for
from safehold.transparency.formats import FORMATS
from tests.transparency.format_helpers import CONTEXT, PERIOD
from tests.transparency.report_helpers import report_figures

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip

playwright_api = pytest.importorskip("playwright.sync_api")
Image = pytest.importorskip("PIL.Image")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


def test_report_renders_with_its_charts(tmp_path):
    figures = report_figures()
    charted = [k for k, f in figures.figures.items() if chart_for(f, PERIOD.each_day()) is not None]
    page_file = tmp_path / "report.html"
    page_file.write_bytes(FORMATS["html"].render(figures, CONTEXT))
    requested: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 900})
            page = context.new_page()

            def route(r):
                requested.append(r.request.url)
                r.continue_() if r.request.url == page_file.as_uri() else r.abort()

            page.route("**/*", route)
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert page.title().startswith("Transparency report: Example Chat")
            svgs = page.locator("svg.chart")
            assert svgs.count() == len(charted) >= 10
            for i in range(svgs.count()):
                svg = svgs.nth(i)
                svg.scroll_into_view_if_needed()
                box = svg.bounding_box()
                assert svg.is_visible() and box["width"] > 300 and box["height"] > 100, i
            shot = page.screenshot(full_page=True, type="png")
            (tmp_path / "report.png").write_bytes(shot)
        finally:
            browser.close()
    assert requested == [page_file.as_uri()]  # nothing else was fetched
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    assert image.height > 5000  # the whole report, not a blank first screen
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    drawn = [c for c in PALETTE[:5] if _rgb(c) in colours]
    assert len(drawn) >= 4, drawn  # the bars and lines are painted in the palette's colours
    assert len(colours) > 50  # text, grids and marks, not a blank page
