"""The console's Exchanges page: list with state, add (settings and secret fields), fetch now, switch, remove."""

from __future__ import annotations

import hashlib
import time

SECRET = "console-secret-31"


def test_an_admin_adds_fetches_and_switches_an_exchange(svc, staff_users, open_console):
    svc.banks.create("feeds")
    svc.settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    values = [hashlib.md5(f"console {i}".encode()).hexdigest() for i in range(2)]
    (svc.settings.feeds_dir / "list.txt").write_text("\n".join(values))
    ada = open_console("ada")
    page = ada.get("/console/admin/exchanges")
    assert page.status_code == 200 and "No exchanges yet." in page.text and 'name="setting.feed.url"' in page.text
    form = {"name": "local", "type": "feed", "bank": "feeds", "every_seconds": "3600",
            "setting.feed.url": "list.txt", "setting.feed.format": "list", "setting.feed.signal_type": "md5",
            "credential.feed.bearer_token": SECRET}  # fmt: skip
    assert ada.post("/console/admin/exchanges", form).status_code == 303
    assert svc.exchanges.get("local")["has_credentials"] is True
    assert ada.post("/console/admin/exchanges/local/fetch").status_code == 303
    deadline = time.monotonic() + 30
    while svc.exchanges.get("local")["fetching"] and time.monotonic() < deadline:
        time.sleep(0.05)
    listing = ada.get("/console/admin/exchanges").text
    assert "2 added" in listing and SECRET not in listing
    assert ada.post("/console/admin/exchanges/local", {"enabled": "false"}).status_code == 303
    assert svc.exchanges.get("local")["enabled"] is False
    bad = ada.post("/console/admin/exchanges", {**form, "name": "web", "setting.feed.url": "http://example.org/x"})
    assert bad.status_code == 400 and "exchange.invalid_settings" in bad.text
    assert ada.post("/console/admin/exchanges/local/delete").status_code == 303
    assert svc.exchanges.list() == []


def test_a_reader_sees_the_page_without_the_forms(svc, staff_users, open_console):
    svc.banks.create("feeds")
    svc.exchanges.create("local", "feed", "feeds", {"url": "list.txt"})
    page = open_console("otto").get("/console/admin/exchanges")  # an auditor: banks.read only
    assert page.status_code == 200 and "local" in page.text
    assert "Fetch now" not in page.text and "New exchange" not in page.text
