"""Rules in real Chromium (Debian's, through Playwright) against a real server, nothing fetched beyond it: an admin
writes a rule, runs it in shadow, backtests it; a second admin approves it; the author promotes it to live."""

from __future__ import annotations

import re

import pytest

from safehold.auth.apikeys import Principal
from tests.web.conftest import PASSWORD
from tests.web.test_browser import CHROMIUM, _login, _watched, browser, playwright_api, server  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def test_write_shadow_backtest_approve_promote(server, browser):  # noqa: F811 -- fixtures imported above
    svc, base = server
    svc.users.create("ada", PASSWORD, "admin", display_name="Ada")
    svc.users.create("bea", PASSWORD, "admin", display_name="Bea")
    expect = playwright_api.expect
    platform = Principal(name="platform", role="platform", key_prefix="sh_one")
    body = {"type": "account", "account": {"id": "u1"}, "signals": [{"source": "grooming", "confidence": 0.95}]}
    svc.events.ingest(platform, body, idempotency_key="k1")  # a detection to backtest over

    ada = browser.new_page()
    problems, outside = _watched(ada)
    _login(ada, base, "ada")
    ada.get_by_role("link", name="Rules", exact=True).click()
    ada.get_by_label("Name", exact=True).fill("groom")
    ada.get_by_label("Condition (CEL)").fill('signals.exists(s, s.source == "grooming" && s.confidence > 0.8)')
    ada.get_by_label("Priority (open case)").select_option("P1")
    ada.get_by_role("button", name="Save as draft").click()
    ada.wait_for_url(re.compile(r"/console/rules/groom\?done=rule_created"))
    ada.get_by_role("button", name="Run version 1 in shadow").click()
    expect(ada.get_by_role("status").filter(has_text="Running in shadow")).to_be_visible()
    ada.get_by_label("Days back").fill("2")
    ada.get_by_role("button", name="Backtest version 1").click()
    expect(ada.locator("#backtest-result")).to_contain_text("would have matched 1 of 1")
    expect(ada.get_by_role("button", name="Approve version 1")).to_have_count(0)  # not her own

    bea = browser.new_page()
    bea_problems, bea_outside = _watched(bea)
    _login(bea, base, "bea")
    bea.goto(f"{base}/console/rules/groom")
    bea.get_by_role("button", name="Approve version 1").click()
    expect(bea.get_by_role("status").filter(has_text="Version approved")).to_be_visible()

    ada.goto(f"{base}/console/rules/groom")
    ada.get_by_role("button", name="Promote version 1 to live").click()
    expect(ada.get_by_role("status").filter(has_text="Live:")).to_be_visible()
    expect(ada.locator("h1 .status")).to_have_text("live")
    ada.screenshot(path="/tmp/x/rule.png", full_page=True)
    ada.goto(f"{base}/console/rules/groom/shadow")
    ada.screenshot(path="/tmp/x/shadow.png", full_page=True)
    assert svc.rules.show("groom")["status"] == "live"
    assert problems == bea_problems == [] and outside == bea_outside == []
