"""Reports and evidence in the console: drafting from a case, editing, viewed flags, submitting, holds."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import update

from safehold.store.models import Report, utcnow
from tests.reporting.helpers import confirmed_case
from tests.review.helpers import media_case

pytestmark = [
    pytest.mark.usefixtures("staff_users"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def _draft(open_console, svc, case_id: int) -> int:
    r = open_console("sam").post(f"/console/cases/{case_id}/report")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=report_drafted"), r.text
    return int(r.headers["location"].split("/")[-1].split("?")[0])


def test_draft_from_the_case_page_only_for_confirmed_cases(open_console, svc):
    case_id, _ = confirmed_case(svc)
    open_id, _ = media_case(svc, 5)
    sam, rita = open_console("sam"), open_console("rita")
    assert "Draft report" in sam.get(f"/console/cases/{case_id}").text
    assert "Draft report" not in sam.get(f"/console/cases/{open_id}").text
    assert "Draft report" not in rita.get(f"/console/cases/{case_id}").text  # reviewers may not draft
    assert "report.not_confirmed" in sam.post(f"/console/cases/{open_id}/report").text

    rid = _draft(open_console, svc, case_id)
    assert _draft(open_console, svc, case_id) == rid  # the same report again
    page = sam.get(f"/console/cases/{case_id}").text
    assert f'href="/console/reports/{rid}"' in page and "Draft report" not in page
    listed = rita.get("/console/reports?status=draft")
    assert listed.status_code == 200 and f'href="/console/reports/{rid}"' in listed.text
    assert f'href="/console/reports/{rid}"' not in rita.get("/console/reports?status=finished").text
    assert rita.get("/console/reports?status=sent").status_code == 422


def test_edit_view_and_submit(open_console, svc, cybertip):
    case_id, item_id = confirmed_case(svc)
    rid = _draft(open_console, svc, case_id)
    rita, lena = open_console("rita"), open_console("lena")
    url = f"/console/reports/{rid}"

    page = rita.get(url).text  # reviewers read reports, nothing more
    assert "Save report" not in page and "Submit to" not in page and "Retract" not in page
    assert "&lt;report" in page  # the XML preview
    assert re.search(r"Viewed by staff</dt>\s*<dd>no</dd>", page)

    # a reveal is what makes the file "viewed", with who and when
    rita.post(f"/console/items/{item_id}/reveal")
    assert rita.get(f"/console/items/{item_id}/media").status_code == 200
    assert "yes: user:rita at" in rita.get(url).text

    page = lena.get(url).text
    assert "Save report" in page and "Submit to NCMEC CyberTipline" in page and "generativeAi" in page
    incident = svc.reports.get(rid)["fields"]["incident_type"]
    form = {"incident_type": incident, "annotations": ["sextortion"], "escalate_to_high_priority": "Ongoing contact."}
    assert lena.post(url, {**form, "incident_type": "Spam"}).status_code == 400
    r = lena.post(url, {**form, "user_screen_name": "bad_actor_9"})
    assert r.status_code == 303 and r.headers["location"] == f"{url}?done=report_saved"
    fields = svc.reports.get(rid)["fields"]
    assert fields["annotations"] == ["sextortion"] and fields["reported_user"] == {"screen_name": "bad_actor_9"}
    assert fields["escalate_to_high_priority"] == "Ongoing contact."
    file_id = svc.reports.get(rid)["files"][0]["id"]
    r = lena.post(f"{url}/files/{file_id}", {"annotations": ["generativeAi"], "publicly_available": "false"})
    assert r.status_code == 303
    assert svc.reports.get(rid)["files"][0]["fields"] == {
        "annotations": ["generativeAi"],
        "relevance": None,
        "publicly_available": False,
    }
    assert "&lt;sextortion&gt;true&lt;/sextortion&gt;" in lena.get(url).text

    assert lena.post(f"{url}/submit").headers["location"] == f"{url}?done=report_submitted"
    # while it is being filed the page reloads itself (to the URL without ?done=) and says where filing is
    r = lena.get(f"{url}?done=report_submitted")
    assert r.headers["refresh"] == f"2; url={url}"
    assert "Report submitted; it is being filed." in r.text and "this page reloads itself" in r.text
    assert re.search(r"Filing</dt><dd>queued</dd>", r.text)
    # a retry waiting for its time: the attempt in words, the reload at the retry's time (at most a minute)
    with svc.db.session() as s:
        s.execute(
            update(Report)
            .where(Report.id == rid)
            .values(attempts=1, next_attempt_at=utcnow() + dt.timedelta(seconds=30))
        )
    r = lena.get(url)
    assert 2 < int(r.headers["refresh"].split(";")[0]) <= 31 and "attempt 2 of 8, due" in r.text
    with svc.db.session() as s:
        s.execute(update(Report).where(Report.id == rid).values(next_attempt_at=utcnow()))
    assert svc.reports.file_due() == 1  # what the server's worker does
    done = svc.reports.get(rid)
    r = lena.get(f"{url}?done=report_submitted")  # a reload after filing ended: no more reloads, a true notice
    page = html.unescape(r.text)
    assert "refresh" not in r.headers and "reloads itself" not in page
    assert "Report submitted and filed." in page and "it is being filed" not in page
    assert re.search(r"Filing</dt><dd>finished · after 1 failed attempt</dd>", page)
    assert done["status"] == "finished" and done["external_id"] in page and "Save report" not in page
    assert "Retract" not in page
    assert "The files are not in this XML" in page


def test_retract_from_the_console(open_console, svc):
    rid = _draft(open_console, svc, confirmed_case(svc)[0])
    lena = open_console("lena")
    assert lena.post(f"/console/reports/{rid}/retract").status_code == 422  # a reason is required
    r = lena.post(f"/console/reports/{rid}/retract", {"reason": "opened by mistake"})
    assert r.status_code == 303 and svc.reports.get(rid)["status"] == "retracted"


def test_evidence_page_and_holds(open_console, svc):
    case_id, _ = confirmed_case(svc)
    svc.evidence.preserve_case(case_id, "legal:lee")
    [item] = svc.evidence.list(case_id=case_id)
    otto, lena = open_console("otto"), open_console("lena")

    page = otto.get("/console/evidence").text
    assert item["sha256"][:16] in page and "Place hold" not in page and "Due for deletion" not in page
    assert "Nothing is due." in lena.get("/console/evidence").text
    assert item["sha256"][:16] not in otto.get("/console/evidence?case_id=999999").text
    assert otto.get("/console/evidence?case_id=abc").status_code == 422

    assert "evidence.invalid_hold" in lena.post("/console/evidence/holds", {"reason": "x"}).text
    bad_days = {"reason": "x", "days": "ten", "case_id": str(case_id)}
    assert lena.post("/console/evidence/holds", bad_days).status_code == 422
    r = lena.post("/console/evidence/holds", {"case_id": str(case_id), "reason": "2703(f) request", "days": "30"})
    assert r.status_code == 303 and r.headers["location"] == "/console/evidence?done=hold_placed"
    [hold] = svc.evidence.holds()
    assert (hold["case_id"], hold["placed_by"]) == (case_id, "user:lena")
    assert "2703(f) request" in lena.get("/console/evidence").text
    r = lena.post(f"/console/evidence/holds/{hold['id']}/release", {"note": "withdrawn"})
    assert r.status_code == 303 and svc.evidence.holds() == []
    assert "released" in lena.get("/console/evidence").text


def test_navigation_by_permission(open_console):
    assert 'href="/console/evidence"' not in open_console("rita").get("/console").text
    assert 'href="/console/reports"' in open_console("rita").get("/console").text
    lena = open_console("lena").get("/console/me").text
    assert 'href="/console/reports"' in lena and 'href="/console/evidence"' in lena
