"""The console's Screening services page: list with state and queue depth, add (settings and secret fields), switch
off and on; readers see it without the forms."""

from __future__ import annotations

from safehold.screening.services.google_standin import GoogleStandIn

SECRET = "console-secret-key-31"


def test_an_admin_adds_and_switches_a_service(svc, staff_users, open_console):
    ada = open_console("ada")
    page = ada.get("/console/admin/screening")
    assert page.status_code == 200 and "No screening services" in page.text
    assert 'name="credential.google_csai.api_key"' in page.text and "Queue: 0 waiting" in page.text
    with GoogleStandIn(api_key=SECRET) as google:
        form = {"name": "gcs", "type": "google_csai", "setting.google_csai.url": google.url,
                "setting.google_csai.requests_per_minute": "120", "credential.google_csai.api_key": SECRET}  # fmt: skip
        assert ada.post("/console/admin/screening", form).status_code == 303
    status = svc.screening.get("gcs")
    assert status["has_credentials"] and status["settings"]["requests_per_minute"] == 120
    listing = ada.get("/console/admin/screening").text
    assert 'data-service="gcs"' in listing and SECRET not in listing
    assert ada.post("/console/admin/screening/gcs", {"enabled": "false"}).status_code == 303
    assert svc.screening.get("gcs")["enabled"] is False
    bad = ada.post("/console/admin/screening", {**form, "name": "web", "setting.google_csai.url": "http://x.example"})
    assert bad.status_code == 400 and "screening.invalid_settings" in bad.text


def test_a_reader_sees_the_page_without_the_forms(svc, staff_users, open_console):
    svc.screening.create("gcs", "google_csai", {}, {"api_key": SECRET})
    page = open_console("sam").get("/console/admin/screening")  # a senior reviewer: stats.read only
    assert page.status_code == 200 and 'data-service="gcs"' in page.text
    assert "New screening service" not in page.text and "Disable" not in page.text
