"""Reports to authorities over the API: draft from a confirmed case, review and edit, submit, follow, retract.

Submitting queues the report for the filing worker (``202``); ``?wait=true`` files it before answering (``200``),
which can take as long as NCMEC's API takes. Exports are zip downloads made in a private temporary folder and
deleted once sent: the package holds decrypted evidence, so no copy stays on the server's disk. Its SHA-256 is
in the ``X-Checksum-SHA256`` header (and in the audit record of the export) so the recipient can check it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from safehold.api.contract import ContractRoute, NotBlank, error_responses
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.downloads import send_package
from safehold.http.params import BodyId, Id, Offset, QueryId
from safehold.reporting.authorities import AUTHORITIES
from safehold.reporting.service import MAX_REASON, STATUSES
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["reports"], route_class=ContractRoute)
READ = require(Permission.REPORTS_READ)
WRITE = require(Permission.REPORTS_WRITE)
SUBMIT = require(Permission.REPORTS_SUBMIT)
ACCESS = require(Permission.EVIDENCE_ACCESS)

#: What ``GET /v1/reports/{id}/status`` answers with: the filing state without the report's contents.
STATUS_KEYS = (
    *("id", "authority", "status", "external_id", "environment", "step", "attempts", "next_attempt_at"),
    *("last_code", "last_error", "filing", "submitted_by", "submitted_at", "finished_at", "retracted_at"),
)
FILE_STATUS_KEYS = ("id", "sha256", "file_id", "upload_started_at", "uploaded_at", "described_at")
Text = Field(None, max_length=10_000)
Authority = Literal[tuple(AUTHORITIES)]


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: BodyId = Field(description="A closed case with a violating decision (csam or cse).")
    authority: Authority = "ncmec"


class ReportedUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    screen_name: str | None = Field(None, max_length=500)
    display_name: str | None = Field(None, max_length=500)
    profile_url: str | None = Field(None, max_length=2000)
    email: str | None = Field(None, max_length=500)
    esp_identifier: str | None = Field(None, max_length=500)


class FileChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotations: list[str] | None = Field(None, description="fileAnnotations flags, e.g. generativeAi.")
    relevance: str | None = Field(None, description="fileRelevance: Reported, Supplemental Reported, …")
    publicly_available: StrictBool | None = None


class ReportChanges(BaseModel):
    """Only the fields given change; ``null`` clears a text field. Values are checked against the schema."""

    model_config = ConfigDict(extra="forbid")
    incident_type: str | None = Field(None, description="A CyberTipline incidentType.")
    annotations: list[str] | None = Field(None, description="reportAnnotations flags, e.g. sextortion.")
    escalate_to_high_priority: str | None = Field(None, max_length=10_000, description="Why, when urgent.")
    incident_description: str | None = Text
    additional_info: str | None = Text
    reported_user: ReportedUser | None = Field(None, description="Replaces the reported user's fields whole.")
    files: dict[BodyId, FileChanges] = Field(
        None,
        description="Per report file id.",
        # The ids as JSON object keys: digits, no leading zero (the pydantic key type checks the same range).
        json_schema_extra={"propertyNames": {"pattern": "^[1-9][0-9]{0,17}$"}},
    )


class ReasonBody(BaseModel):
    reason: NotBlank = Field(max_length=MAX_REASON)


class FiledBody(BaseModel):
    external_id: NotBlank = Field(max_length=64, description="The authority's reference for the report.")


@router.get("/reports", summary="Reports, newest first")
def list_reports(
    status: Literal[STATUSES] | None = None,
    authority: Authority | None = None,
    case_id: QueryId = None,
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _: Principal = Depends(READ),
) -> list[dict]:
    return svc.reports.list(status=status, authority=authority, case_id=case_id, limit=limit, offset=offset)


@router.post("/reports", status_code=201, summary="Draft a report from a confirmed case (joins its incident's draft)")
def draft_report(body: DraftBody, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.reports.draft_from_case(body.case_id, who.label, authority=body.authority)


@router.get("/reports/{report_id}", summary="One report: fields, cases, files with their viewed flags, filing state")
def get_report(report_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    return svc.reports.get(report_id)


@router.patch("/reports/{report_id}", summary="Edit a draft or failed report")
def update_report(
    report_id: Id, body: ReportChanges, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.reports.update(report_id, body.model_dump(exclude_unset=True), who.label)


@router.get(
    "/reports/{report_id}/document",
    summary="The CyberTipline <report> XML as it would be filed now (validated)",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def report_document(report_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> Response:
    headers = {"Cache-Control": "no-store", "Content-Disposition": f'inline; filename="report-{report_id}.xml"'}
    return Response(svc.reports.document(report_id), media_type="application/xml", headers=headers)


@router.post(
    "/reports/{report_id}/submit",
    status_code=202,
    summary="File the report: queued for the worker (202), or filed before answering with ?wait=true (200)",
    responses={200: {"description": "Filed (with ?wait=true)."}, **error_responses(502)},
)
def submit_report(
    report_id: Id,
    response: Response,
    wait: bool = Query(False, description="File now and answer with the outcome."),
    svc: Services = Depends(services),
    who: Principal = Depends(SUBMIT),
) -> dict:
    report = svc.reports.submit(report_id, who.label, wait=wait)
    if wait:
        response.status_code = 200
    return report


@router.get("/reports/{report_id}/status", summary="The filing state: status, NCMEC report id, step, last error")
def report_status(report_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    report = svc.reports.get(report_id)
    out = {k: report.get(k) for k in STATUS_KEYS}
    out["files"] = [{k: f.get(k) for k in FILE_STATUS_KEYS} for f in report["files"]]
    return out


@router.post(
    "/reports/{report_id}/retract",
    summary="Withdraw a report (a draft is discarded; an unfinished filing is retracted at NCMEC)",
)
def retract_report(
    report_id: Id, body: ReasonBody, svc: Services = Depends(services), who: Principal = Depends(SUBMIT)
) -> dict:
    return svc.reports.retract(report_id, who.label, body.reason)


@router.post("/reports/{report_id}/filed", summary="Record a report filed by hand with an authority that has no API")
def mark_filed(
    report_id: Id, body: FiledBody, svc: Services = Depends(services), who: Principal = Depends(SUBMIT)
) -> dict:
    return svc.reports.mark_filed(report_id, body.external_id, who.label)


@router.post(
    "/reports/{report_id}/export",
    summary="The report's package (zip: files, manifest of hashes, records); its SHA-256 in X-Checksum-SHA256",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def export_report(report_id: Id, svc: Services = Depends(services), who: Principal = Depends(ACCESS)) -> FileResponse:
    return send_package(svc, lambda dest: svc.reports.export(report_id, who.label, dest_dir=dest))


@router.get("/cybertipline/status", summary="Check the configured CyberTipline URL and credentials (GET /status)")
def cybertipline_status(svc: Services = Depends(services), _: Principal = Depends(SUBMIT)) -> dict:
    return svc.reports.check_connection()
