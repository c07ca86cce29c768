"""The console's Transparency reports page: the stored reports with download links for staff who read
transparency, the generate form for those who may write it, readable without JavaScript."""

from __future__ import annotations

import hashlib

import pytest

from tests.transparency.fakes import SAMPLE, FakeFacts

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def facts(svc):
    svc.transparency.facts = fake = FakeFacts({k: list(v) for k, v in SAMPLE.items()})
    return fake


def test_list_generate_and_download(svc, facts, open_console, staff_users):
    otto = open_console("otto")  # an auditor reads the reports, never generates one
    page = otto.get("/console/transparency")
    assert page.status_code == 200
    assert 'href="/console/transparency"' in page.text and "No report yet." in page.text
    assert 'action="/console/transparency/reports"' not in page.text
    assert otto.post("/console/transparency/reports", {"period": "2026-H1", "format": "json"}).status_code == 403

    lena = open_console("lena")  # legal generates them
    form = lena.get("/console/transparency").text
    assert 'action="/console/transparency/reports"' in form and '<option value="json">' in form
    r = lena.post("/console/transparency/reports", {"period": "2026-H1", "format": "json"})
    assert r.status_code == 303 and "transparency_report_generated" in r.headers["location"]
    shown = lena.get(r.headers["location"]).text
    assert "Transparency report generated and stored" in shown and "2026-H1 (2026-01-01 to 2026-06-30)" in shown
    meta = svc.transparency.list()["reports"][0]
    assert meta["created_by"] == "user:lena"
    link = f"/console/transparency/reports/{meta['id']}/content"
    assert f'href="{link}"' in shown and meta["filename"] in shown

    got = otto.get(link)
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
    assert hashlib.sha256(got.content).hexdigest() == meta["content_sha256"]
    assert got.headers["content-disposition"] == f'attachment; filename="{meta["filename"]}"'

    later = otto.get("/console/transparency?offset=50").text  # past the last page: a way back, no rows
    assert 'href="/console/transparency?offset=0">Newer' in later and "No report yet." in later

    partial = lena.post("/console/transparency/reports", {"period": "last-7d", "format": "json"})
    assert partial.status_code == 303 and "partial" in lena.get("/console/transparency").text


def test_bad_requests_show_the_error(svc, facts, open_console, staff_users):
    lena = open_console("lena")
    r = lena.post("/console/transparency/reports", {"period": "2026-H1", "format": "docx"})
    assert r.status_code == 400 and "transparency.unknown_format" in r.text
    r = lena.post("/console/transparency/reports", {"period": "someday", "format": "json"})
    assert r.status_code == 400 and "transparency.bad_period" in r.text
    assert lena.get("/console/transparency/reports/999/content").status_code == 404
    assert svc.transparency.list()["total"] == 0


def test_no_link_for_those_without_the_permission(open_console, staff_users):
    rita = open_console("rita")  # a reviewer does not read transparency
    assert 'href="/console/transparency"' not in rita.get("/console/me").text
    assert rita.get("/console/transparency").status_code == 403
