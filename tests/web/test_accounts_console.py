"""The console's accounts page: an account's band, rule, deciding signal and signals; a reviewer's finding; the
band on a case page with a link to the account's age page."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.web.conftest import open_media_case

pytestmark = [
    pytest.mark.usefixtures("staff_users"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def test_an_account_page_shows_the_band_rule_and_signals(open_console, svc):
    svc.ages.record("apikey:platform", "kid/1&x", "declared", birth_date=dt.date(1990, 1, 1))
    svc.ages.record("system", "kid/1&x", "chat", age=13, confidence=0.6, method="chat_statement")
    otto = open_console("otto")  # an auditor reads
    listing = otto.get("/console/accounts")
    assert listing.status_code == 200 and "kid/1&amp;x" in listing.text
    assert "/console/accounts?account_id=kid/1%26x" in listing.text
    page = otto.get("/console/accounts", params={"account_id": "kid/1&x"})
    assert page.status_code == 200
    assert "<strong>13-15</strong>" in page.text and "protective" in page.text and "chat_statement" in page.text
    assert "born 1990-01-01" in page.text and "Record your finding" not in page.text  # an auditor does not review
    assert "As a sender" in page.text and "age conflict" in page.text  # a declared adult, "13" in chat
    assert 'href="/console/accounts"' in page.text  # the navigation links the page


def test_a_reviewer_records_a_finding(open_console, svc):
    svc.ages.record("system", "kid-2", "chat", age=13, confidence=0.6)
    rita = open_console("rita")
    page = rita.get("/console/accounts", params={"account_id": "kid-2"})
    assert "Record your finding" in page.text
    r = rita.post("/console/accounts/finding", {"account_id": "kid-2", "band": "adult", "reference": "case 12"})
    assert r.status_code == 303 and r.headers["location"].startswith("/console/accounts?account_id=kid-2")
    age = svc.ages.show("kid-2")
    assert (age["band"], age["rule"]) == ("adult", "reviewer") and age["signal"]["actor"] == "user:rita"
    assert "Finding recorded" in rita.get(r.headers["location"]).text


def test_a_bad_finding_is_refused_on_the_page(open_console, svc):
    rita = open_console("rita")
    r = rita.post("/console/accounts/finding", {"account_id": "kid-3", "band": "teen"})
    assert r.status_code == 422 and "age.invalid" in r.text
    assert svc.ages.signals("kid-3") == []


def test_the_case_page_shows_the_account_band_and_links_its_age_page(open_console, svc):
    case_id, _, _ = open_media_case(svc, account="acct-9")
    svc.ages.record("apikey:platform", "acct-9", "platform", band="16-17")
    page = open_console("rita").get(f"/console/cases/{case_id}")
    assert page.status_code == 200
    assert "age band <strong>16-17</strong>" in page.text and "/console/accounts?account_id=acct-9" in page.text
