"""The console's text-safety page and the explanation a text case shows its reviewer."""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.usefixtures("staff_users"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

GROOMING = [
    ("adult", "you are so mature for your age"),
    ("teen", "i'm 13 lol"),
    ("adult", "are you home alone right now"),
    ("adult", "don't tell your parents about me, this is our secret"),
    ("adult", "add me on snap, delete this chat"),
    ("adult", "send me a pic of you"),
    ("adult", "we should meet up this weekend, i can pick you up"),
]


def _stream(svc, conversation="chat-9"):
    out = None
    for i, (author, text) in enumerate(GROOMING):
        out = svc.conversations.add_messages(
            "apikey:platform", conversation, {"id": f"m{i}", "author": author, "text": text}
        )
    return out


def test_conversation_alert_case_shows_why_it_was_flagged(open_console, svc):
    result = _stream(svc)
    assert result["assessment"]["alert"] and result["case"] is not None
    rita = open_console("rita")
    page = rita.get("/console/text")
    assert page.status_code == 200 and "chat-9" in page.text and f"/console/cases/{result['case']['id']}" in page.text
    case = rita.get(f"/console/cases/{result['case']['id']}")
    assert case.status_code == 200 and "Why it was flagged" in case.text
    assert "risk assessment" in case.text and "are you home alone right now" in case.text
    assert "Risk from <strong>adult</strong>" in case.text


def test_term_lists_import_and_switch_from_the_console(open_console, svc):
    sam = open_console("sam")  # senior reviewer: banks.write
    csv = "term,category,severity\nzorblat mix,csam,3\n"
    r = sam.post("/console/text/terms", data={"name": "partner"}, files={"file": ("p.csv", csv, "text/csv")})
    assert r.status_code == 303 and r.headers["location"] == "/console/text?done=terms_imported"
    assert svc.terms.current().guard.check("zorblat mix").action == "block"
    page = sam.get("/console/text?done=terms_imported").text
    assert "Term list imported" in page and "partner" in page
    assert sam.post("/console/text/terms/partner", data={"enabled": "false"}).status_code == 303
    assert svc.terms.current().guard.check("zorblat mix").action == "allow"
    bad = sam.post("/console/text/terms", data={"name": "x"}, files={"file": ("p.csv", "nope\n", "text/csv")})
    assert bad.status_code == 400 and "terms.invalid_csv" in bad.text


def test_search_counts_and_roles(open_console, svc):
    svc.search.check("pthc", "en", bucket="b1")
    svc.search.check("weather", "en")
    otto = open_console("otto")  # auditor: reads, never writes
    page = otto.get("/console/text").text
    assert "Search guard, last 30 days" in page and "Import a list" not in page
    assert "weather" not in page and "pthc" not in page  # counts only
    rita = open_console("rita")
    assert rita.post("/console/text/terms/starter", data={"enabled": "false"}).status_code == 403
    assert open_console().get("/console/text").status_code == 303  # signed out: to the log-in page
