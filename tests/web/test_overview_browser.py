"""The Overview page in real Chromium (Debian's, through Playwright) against a real server, with JavaScript off:
the period form works, every figure's chart is drawn (a visible SVG of real size), the numbers behind a chart open
with a click, and nothing is fetched from beyond this server. The figures are a hand-built set
(tests/transparency/overview_helpers.py)."""

from __future__ import annotations

import pytest

from safehold.transparency.engine import Facts
from safehold.transparency.figures import CATALOGUE
from tests.transparency.overview_helpers import sample
from tests.web.conftest import PASSWORD
from tests.web.test_browser import ARGS, CHROMIUM, _watched, playwright_api, server  # noqa: F401 -- a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def test_overview_without_javascript(server, monkeypatch):  # noqa: F811 -- the fixture imported above
    svc, base = server
    monkeypatch.setattr(Facts, "figures", lambda self, period, filters=None, as_of=None: sample(period, filters))
    svc.users.create("otto", PASSWORD, "auditor", display_name="Otto")
    expect = playwright_api.expect
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
            page = context.new_page()
            problems, outside = _watched(page)
            page.goto(f"{base}/login")
            page.get_by_label("User name").fill("otto")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{base}/console")
            page.get_by_role("link", name="Overview").click()
            page.wait_for_url(f"{base}/console/overview")
            expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

            page.get_by_role("combobox", name="Period").fill("2026-H1")
            page.get_by_label("Queue", exact=True).select_option("media")
            page.get_by_role("button", name="Show").click()
            page.wait_for_url(f"{base}/console/overview?period=2026-H1&source=&queue=media")
            expect(page.get_by_text("2026-H1 (2026-01-01 to 2026-06-30)")).to_be_visible()

            svgs = page.locator("figure.chart svg")
            assert svgs.count() == len(CATALOGUE)
            for i in range(svgs.count()):
                svg = svgs.nth(i)
                svg.scroll_into_view_if_needed()
                box = svg.bounding_box()
                assert svg.is_visible() and box["width"] > 300 and box["height"] > 100, i

            figure = page.locator('[data-figure="detections.by_source"]')
            table = figure.locator("table")
            assert not table.is_visible()
            figure.locator("summary").click()  # <details> opens without any script
            expect(table.locator("caption")).to_have_text("Detections by source, 2026-H1")
            expect(table.locator("tbody tr").first).to_contain_text("140")
            assert page.screenshot(full_page=True, type="png")[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            browser.close()
    assert problems == [] and outside == []
