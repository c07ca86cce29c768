"""Reports to authorities and the evidence register in the console.

A report is drafted from a closed case with a violating decision, automatically by a policy with the
``open_report_draft`` action (``confirmed-csam`` drafts on a confirmed decision) or by hand (the case page's
"Draft report" button), edited here, and filed by someone whose role may submit (``reports.submit``); everyone who
may read reports sees its status, NCMEC's report id, the last filing error, the XML as it would be filed, and, for
each file, whether staff viewed it and who and when: the audit log's reveal records, which is what the report tells
NCMEC (US v. Wilson). While a report is being filed its page reloads itself (a ``Refresh`` header, no JavaScript)
until it is finished or failed. The evidence page shows the register (hashes and dates, never content), legal holds
and what the next purge would delete. Choices offered on forms come from the loaded CyberTipline schema, the same
one that validates the report.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.errors import SafeholdError, detached
from safehold.http.downloads import send_package
from safehold.http.params import MAX_DB_INT, Id
from safehold.reporting.cybertipline.schema import Schema
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

READ = Permission.REPORTS_READ
WRITE = Permission.REPORTS_WRITE
SUBMIT = Permission.REPORTS_SUBMIT
STATUSES = ("draft", "submitted", "failed", "finished", "retracted")
ReportStatus = Literal["draft", "submitted", "failed", "finished", "retracted", "all"]
#: A tri-state form field: "" (not said), "true" or "false".
Tristate = Literal["", "true", "false"]
#: Seconds between reloads of a report's page while it is being filed, and the longest wait while a retry is due.
REFRESH_SECONDS = 2
REFRESH_MAX_SECONDS = 60
#: The filing steps (``report.step``) in words.
STEPS = {
    "opened": "opened at the authority; sending the files",
    "finishing": "files sent; finishing",
    "finished": "finished",
}


def _schema(svc: Services) -> Schema:
    return Schema.load(svc.settings.cybertip_schema)


# ----------------------------------------------------------------------------------------------- reports


@router.get("/console/reports")
def reports(
    request: Request,
    status: ReportStatus = Query("all"),
    who: Staff = Depends(staff(READ)),
    svc: Services = Depends(services),
) -> Response:
    rows = svc.reports.list(status=None if status == "all" else status, limit=200)
    return page(request, "reports.html", reports=rows, shown=status, statuses=STATUSES)


@router.get("/console/reports/{report_id}")
def report(
    request: Request, report_id: Id, who: Staff = Depends(staff(READ)), svc: Services = Depends(services)
) -> Response:
    found = svc.reports.get(report_id)
    xml = problem = None
    if found["files_by_api"]:
        try:
            xml = svc.reports.document(report_id).decode()
        except SafeholdError as exc:  # shown on the page: the reviewer fixes the fields and saves again
            problem = detached(exc)
    schema = _schema(svc)
    refresh = _refresh(found)
    extra = {}
    if request.query_params.get("done") == "report_submitted" and refresh is None:
        # The notice follows the real status: the filing may have ended before this page was drawn.
        extra["notice"] = {
            "finished": "Report submitted and filed.",
            "failed": "Report submitted; filing failed (see the last error).",
        }.get(found["status"], "Report submitted.")
    response = page(
        request,
        "report.html",
        report=found,
        xml=xml,
        problem=problem,
        refresh=refresh,
        steps=STEPS,
        max_attempts=svc.settings.cybertip_max_attempts,
        incident_types=schema.enumeration("incidentType"),
        report_flags=schema.flags("reportAnnotations"),
        file_flags=schema.flags("fileAnnotations"),
        relevances=schema.enumeration("fileRelevance"),
        **extra,
    )
    if refresh is not None:
        # The HTTP form of <meta http-equiv="refresh">: no JavaScript; the reload drops ``?done=``.
        response.headers["Refresh"] = f"{refresh}; url=/console/reports/{report_id}"
    return response


def _refresh(report: dict) -> int | None:
    """Seconds until the report's page reloads itself, or None once filing is settled (or done by hand).

    Every few seconds while a run files it or its next attempt is due; while a retry waits (back-off), at the
    retry's time, at most a minute apart, so a form being filled in on the page is not wiped every few seconds.
    """
    if report["status"] != "submitted" or not report["files_by_api"]:
        return None
    due = report["next_attempt_at"]
    if report["filing"] or not due:
        return REFRESH_SECONDS
    wait = (dt.datetime.fromisoformat(due) - dt.datetime.now(dt.UTC)).total_seconds()
    return int(min(max(wait + 1, REFRESH_SECONDS), REFRESH_MAX_SECONDS))


@router.post("/console/reports/{report_id}")
def update_report(
    report_id: Id,
    incident_type: str = Form(..., max_length=200),
    annotations: list[str] = Form([]),
    escalate_to_high_priority: str = Form("", max_length=10_000),
    incident_description: str = Form("", max_length=10_000),
    additional_info: str = Form("", max_length=10_000),
    user_screen_name: str = Form("", max_length=500),
    user_display_name: str = Form("", max_length=500),
    user_profile_url: str = Form("", max_length=2000),
    user_email: str = Form("", max_length=500),
    user_esp_identifier: str = Form("", max_length=500),
    who: Staff = Depends(staff(WRITE)),
    svc: Services = Depends(services),
) -> Response:
    user = {
        "screen_name": user_screen_name,
        "display_name": user_display_name,
        "profile_url": user_profile_url,
        "email": user_email,
        "esp_identifier": user_esp_identifier,
    }
    changes = {
        "incident_type": incident_type,
        "annotations": annotations,
        "escalate_to_high_priority": escalate_to_high_priority,
        "incident_description": incident_description,
        "additional_info": additional_info,
        "reported_user": {k: v for k, v in user.items() if v.strip()},
    }
    svc.reports.update(report_id, changes, who.label)
    return back(f"/console/reports/{report_id}", "report_saved")


@router.post("/console/reports/{report_id}/files/{file_id}")
def update_file(
    report_id: Id,
    file_id: Id,
    annotations: list[str] = Form([]),
    relevance: str = Form("", max_length=100),
    publicly_available: Tristate = Form(""),
    who: Staff = Depends(staff(WRITE)),
    svc: Services = Depends(services),
) -> Response:
    public = {"": None, "true": True, "false": False}[publicly_available]
    values = {"annotations": annotations, "relevance": relevance or None, "publicly_available": public}
    svc.reports.update(report_id, {"files": {file_id: values}}, who.label)
    return back(f"/console/reports/{report_id}", "report_saved")


@router.post("/console/reports/{report_id}/submit")
def submit_report(report_id: Id, who: Staff = Depends(staff(SUBMIT)), svc: Services = Depends(services)) -> Response:
    svc.reports.submit(report_id, who.label)
    return back(f"/console/reports/{report_id}", "report_submitted")


@router.post("/console/reports/{report_id}/retract")
def retract_report(
    report_id: Id,
    reason: str = Form(..., max_length=2000),
    who: Staff = Depends(staff(SUBMIT)),
    svc: Services = Depends(services),
) -> Response:
    svc.reports.retract(report_id, who.label, reason)
    return back(f"/console/reports/{report_id}", "report_retracted")


@router.post("/console/reports/{report_id}/filed")
def mark_filed(
    report_id: Id,
    external_id: str = Form(..., max_length=64),
    who: Staff = Depends(staff(SUBMIT)),
    svc: Services = Depends(services),
) -> Response:
    svc.reports.mark_filed(report_id, external_id, who.label)
    return back(f"/console/reports/{report_id}", "report_filed")


@router.post("/console/reports/{report_id}/export")
def export_report(
    report_id: Id, who: Staff = Depends(staff(Permission.EVIDENCE_ACCESS)), svc: Services = Depends(services)
) -> Response:
    return send_package(svc, lambda dest: svc.reports.export(report_id, who.label, dest_dir=dest))


@router.post("/console/cases/{case_id}/report")
def draft_report(case_id: Id, who: Staff = Depends(staff(WRITE)), svc: Services = Depends(services)) -> Response:
    drafted = svc.reports.draft_from_case(case_id, who.label)
    return back(f"/console/reports/{drafted['id']}", "report_drafted")


# ---------------------------------------------------------------------------------------------- evidence


@router.get("/console/evidence")
def evidence(
    request: Request,
    case_id: str = Query("", max_length=20),
    purged: bool = Query(False),
    who: Staff = Depends(staff(Permission.EVIDENCE_READ)),
    svc: Services = Depends(services),
) -> Response:
    manage = who.can(Permission.EVIDENCE_MANAGE)
    case = _number("case_id", case_id)
    return page(
        request,
        "evidence.html",
        items=svc.evidence.list(case_id=case, include_purged=purged, limit=200),
        holds=svc.evidence.holds(active_only=False),
        expired=svc.evidence.expired() if manage else [],
        case_id=case,
        purged=purged,
    )


@router.post("/console/evidence/holds")
def place_hold(
    reason: str = Form(..., max_length=2000),
    case_id: str = Form("", max_length=20),
    account_id: str = Form("", max_length=128),
    reference: str = Form("", max_length=128),
    days: str = Form("", max_length=6),
    who: Staff = Depends(staff(Permission.EVIDENCE_MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    svc.evidence.hold(
        case_id=_number("case_id", case_id),
        account_id=account_id.strip() or None,
        reason=reason,
        actor=who.label,
        reference=reference.strip() or None,
        days=_number("days", days),
    )
    return back("/console/evidence", "hold_placed")


@router.post("/console/evidence/holds/{hold_id}/release")
def release_hold(
    hold_id: Id,
    note: str = Form("", max_length=2000),
    who: Staff = Depends(staff(Permission.EVIDENCE_MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    svc.evidence.release(hold_id, who.label, note=note or None)
    return back("/console/evidence", "hold_released")


def _number(name: str, text: str) -> int | None:
    """An optional whole-number form field (an empty box is "not given")."""
    text = text.strip()
    if not text:
        return None
    # isascii: str.isdigit() is also true of '²' and other digits int() refuses; the bound is the database's.
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DB_INT:
        raise SafeholdError("request.invalid", f"{name} must be a whole number.", status=422)
    return int(text)
