"""Submitting, retracting and tracking reports; the filing task on each engine; the connection check."""

from __future__ import annotations

import time

import pytest

from safehold.background import FILE_REPORTS
from safehold.errors import SafeholdError
from safehold.reporting.filing import Filer
from tests.reporting.helpers import LEGAL, about, audit_actions, draft, lapse_lease
from tests.reporting.test_filing import Crash, crash_at


def _code(call, *args, **kw) -> str:
    with pytest.raises(SafeholdError) as e:
        call(*args, **kw)
    return e.value.code


def test_submitting_needs_credentials_and_a_valid_document(svc):
    report = draft(svc)
    svc.settings.cybertip_username = svc.settings.cybertip_password = None
    assert _code(svc.reports.submit, report["id"], LEGAL) == "cybertip.not_configured"
    svc.settings.cybertip_username, svc.settings.cybertip_password = "esp", "secret"
    svc.settings.cybertip_url = "http://127.0.0.1:9/ispws"  # nothing is sent when queueing
    out = svc.reports.submit(report["id"], LEGAL)
    assert (out["status"], out["submitted_by"], out["attempts"], out["external_id"]) == ("submitted", LEGAL, 0, None)
    assert svc.reports.submit(report["id"], LEGAL)["status"] == "submitted"  # again: nothing changes
    assert len(audit_actions(svc, "report.submit", report["id"])) == 1
    assert _code(svc.reports.update, report["id"], {"additional_info": "x"}, LEGAL) == "report.not_editable"
    assert [r["id"] for r in svc.reports.list(status="submitted")] == [report["id"]]
    assert svc.reports.list(status="draft") == []
    assert _code(svc.reports.list, status="sent") == "report.invalid_filter"
    assert _code(svc.reports.submit, 999_999, LEGAL) == "report.not_found"


def test_a_submitted_incident_gets_a_new_draft_for_new_cases(svc, cybertip):
    first = draft(svc, 1, content_id="c-1")
    svc.reports.submit(first["id"], LEGAL)
    later = draft(svc, 2, content_id="c-2")
    assert later["id"] != first["id"] and later["incident_key"] == first["incident_key"]


def test_retracting_a_draft_discards_it(svc):
    report = draft(svc)
    assert _code(svc.reports.retract, report["id"], LEGAL, " ") == "report.invalid_reason"
    out = svc.reports.retract(report["id"], LEGAL, "duplicate of an earlier report")
    assert (out["status"], out["retracted_by"]) == ("retracted", LEGAL)
    [rec] = audit_actions(svc, "report.retract", report["id"])
    assert rec["detail"]["reason"] == "duplicate of an earlier report" and not rec["detail"]["retracted_at_ncmec"]
    assert svc.reports.retract(report["id"], LEGAL, "again")["status"] == "retracted"
    assert _code(svc.reports.submit, report["id"], LEGAL) == "report.not_submittable"
    # the case can be drafted again: a retracted report does not hold it
    assert svc.reports.draft_from_case(report["cases"][0]["id"], LEGAL)["id"] != report["id"]


def test_retracting_a_report_opened_at_ncmec_withdraws_it_there(svc, cybertip):
    queued = draft(svc, 1, account_id="queued", content_id="q")
    svc.reports.submit(queued["id"], LEGAL)
    assert svc.reports.retract(queued["id"], LEGAL, "mistake")["status"] == "retracted"  # never sent: nothing to do
    assert about(cybertip, "queued") == []

    opened = draft(svc, 2, account_id="opened", content_id="o")
    svc.reports.submit(opened["id"], LEGAL)
    with pytest.raises(Crash):
        Filer(svc.db, svc.audit, svc.evidence, svc.settings, hook=crash_at("upload:saved")).file(opened["id"])
    assert _code(svc.reports.retract, opened["id"], LEGAL, "mistake") == "report.busy"  # a run holds it
    lapse_lease(svc, opened["id"])
    out = svc.reports.retract(opened["id"], LEGAL, "mistake")
    assert out["status"] == "retracted" and out["filing"] is False
    [at_ncmec] = about(cybertip, "opened")
    assert at_ncmec.retracted and not at_ncmec.finished
    assert audit_actions(svc, "report.retract", opened["id"])[0]["detail"]["retracted_at_ncmec"] is True
    assert svc.reports.file_due() == 0  # nothing left to file


def test_a_filed_report_cannot_be_retracted(svc, cybertip):
    report = draft(svc)
    svc.reports.submit(report["id"], LEGAL, wait=True)
    assert _code(svc.reports.retract, report["id"], LEGAL, "too late") == "report.finished"


def test_retract_learns_that_ncmec_finished_it(svc, cybertip):
    report = draft(svc)
    svc.reports.submit(report["id"], LEGAL)
    with pytest.raises(Crash):  # /finish went through, its answer was never recorded
        Filer(svc.db, svc.audit, svc.evidence, svc.settings, hook=crash_at("finish:sent")).file(report["id"])
    lapse_lease(svc, report["id"])
    assert _code(svc.reports.retract, report["id"], LEGAL, "mistake") == "report.finished"
    assert svc.reports.get(report["id"])["status"] == "finished"


def test_the_worker_files_submitted_reports(svc, cybertip, tasks_engine):
    report = draft(svc)
    svc.reports.submit(report["id"], LEGAL)  # kicks the filing task
    deadline = time.monotonic() + 20
    while svc.reports.get(report["id"])["status"] != "finished":
        assert time.monotonic() < deadline, svc.reports.get(report["id"])
        time.sleep(0.05)
    assert len(cybertip.finished()) == 1
    assert svc.tasks.run_now(FILE_REPORTS) == 0


def test_the_connection_check(svc, cybertip):
    out = svc.reports.check_connection()
    assert out["ok"] and out["environment"] == "test" and out["url"] == svc.settings.cybertip_url
    svc.settings.cybertip_password = "wrong"
    out = svc.reports.check_connection()
    assert (out["ok"], out["response_code"], out["code"]) == (False, 2000, "cybertip.auth")
    assert "wrong" not in str(out)
    svc.settings.cybertip_password = None
    assert _code(svc.reports.check_connection) == "cybertip.not_configured"
