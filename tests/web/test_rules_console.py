"""Operator rules in the console: write (refusals at their line and column), shadow, backtest, approval by a second
admin (never the author), promote, the shadow comparison with links to cases, and the named lists' editor with
approval of a change a live rule reads."""

from __future__ import annotations

import pytest
from markupsafe import escape

from safehold.auth.apikeys import Principal
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PLATFORM = Principal(name="platform", role="platform", key_prefix="sh_one")
GROOMING = 'signals.exists(s, s.source == "grooming" && s.confidence > 0.8)'
RULE = {"name": "groom", "expression": GROOMING, "effect_type": "open_case", "priority": "P1"}


def _event(svc, key: str, account: str, confidence: float | None = None) -> dict:
    body = {"type": "account", "account": {"id": account}}
    if confidence is not None:
        body["signals"] = [{"source": "grooming", "category": "grooming", "confidence": confidence}]
    return svc.events.ingest(PLATFORM, body, idempotency_key=key)


@pytest.fixture
def admins(svc, staff_users, totp_secrets, open_console):
    """ada (staff_users' admin) and a second admin, bea, both signed in."""
    svc.users.create("bea", PASSWORD, "admin", display_name="Bea")
    totp_secrets["bea"] = svc.users.enrol("bea", actor="cli")[0]
    return open_console("ada"), open_console("bea")


def test_a_rule_from_draft_to_live_through_the_console(svc, admins):
    ada, bea = admins
    bad = ada.post("/console/rules", {**RULE, "expression": "grooming >\n  && 1"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text and "rules.syntax" in bad.text
    assert "At line" in bad.text and 'aria-invalid="true"' in bad.text and "grooming &gt;" in bad.text
    r = ada.post("/console/rules", RULE)
    assert r.status_code == 303 and r.headers["location"] == "/console/rules/groom?done=rule_created"
    assert ada.post("/console/rules/groom/status", {"status": "shadow", "version": "1"}).status_code == 303
    # A detection the live set leaves alone: the shadow rule would have opened a case.
    _event(svc, "k1", "u1", 0.95)
    _event(svc, "k1", "u1", 0.95)  # a retry counts once
    backtest = ada.post("/console/rules/groom/backtest", {"days": "3", "version": "1"})
    assert backtest.status_code == 200 and "would have matched" in backtest.text
    page = ada.get("/console/rules/groom").text
    assert "Approve version 1" not in page and "you wrote it" in page
    refused = ada.post("/console/rules/groom/approve", {"version": "1"})
    assert refused.status_code == 403 and "rules.self_approval" in refused.text
    assert "Approve version 1" in bea.get("/console/rules/groom").text
    assert bea.post("/console/rules/groom/approve", {"version": "1"}).status_code == 303
    assert ada.post("/console/rules/groom/status", {"status": "live", "version": "1"}).status_code == 303
    listing = ada.get("/console/rules").text
    assert "/console/rules/groom" in listing and "status-live" in listing
    cmp = ada.get("/console/rules/groom/shadow?days=7")
    assert cmp.status_code == 200 and "/console/cases/" in cmp.text
    figures = cmp.text.split('id="shadow-figures"')[1].split("</table>")[0]
    assert "<td>1</td>" in figures
    # An edit is a new version with its diff; the approved one keeps running.
    r = ada.post("/console/rules/groom", {**RULE, "expression": GROOMING.replace("0.8", "0.9")})
    assert r.status_code == 303
    page = ada.get("/console/rules/groom").text
    assert "Version 2" in page and "+" + str(escape(GROOMING.replace("0.8", "0.9"))) in page
    # Version 2 runs in shadow beside live version 1, which keeps acting; the comparison includes version 1.
    assert "Run version 2 in shadow beside live" in page and "Stop live" not in page
    assert ada.post("/console/rules/groom/status", {"status": "shadow", "version": "2"}).status_code == 303
    page = ada.get("/console/rules/groom").text
    assert "status-live" in page and "version 2 in shadow beside it" in page and "Stop the shadow of version 2" in page
    assert "(1; 2 in shadow)" in ada.get("/console/rules").text
    _event(svc, "k2", "u2", 0.95)
    cmp = ada.get("/console/rules/groom/shadow?days=7").text
    assert "What version 2 of the rule" in cmp and "its live version 1 matched too</th><td>1</td>" in cmp
    assert bea.post("/console/rules/groom/approve", {"version": "2"}).status_code == 303
    assert ada.post("/console/rules/groom/status", {"status": "live", "version": "2"}).status_code == 303
    page = ada.get("/console/rules/groom").text
    assert "version 2, live" in page and "in shadow beside it" not in page
    assert ada.post("/console/rules/groom/status", {"status": "disabled"}).status_code == 303


def test_named_lists_in_the_console(svc, admins):
    ada, bea = admins
    assert (
        ada.post("/console/named-lists", {"name": "watched", "kind": "accounts", "items": "u1\nu2\n"}).status_code
        == 303
    )
    svc.rules.create("w", "subject.account_id in lists.watched", {"type": "add_label", "label": "w"}, "user:ada")
    svc.rules.approve("w", "user:bea")
    svc.rules.set_status("w", "live", "user:ada")
    r = ada.post("/console/named-lists", {"name": "watched", "kind": "accounts", "items": "u1\nu2\nu3"})
    assert r.headers["location"].endswith("done=list_pending")
    assert "(another admin approves)" in ada.get("/console/named-lists").text
    assert ada.post("/console/named-lists/watched/approve").status_code == 403
    assert "Approve change to watched" in bea.get("/console/named-lists").text
    assert bea.post("/console/named-lists/watched/approve").status_code == 303
    assert svc.rules.get_list("watched")["values"] == ["u1", "u2", "u3"]
    page = ada.get("/console/named-lists?edit=watched").text
    assert "u3" in page and "Edit watched" in page
    bad = ada.post("/console/named-lists", {"name": "Bad Name", "kind": "accounts", "items": "x"})
    assert bad.status_code == 400 and "rules.invalid_name" in bad.text
