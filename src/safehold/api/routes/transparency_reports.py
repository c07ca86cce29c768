"""``/v1/transparency/reports…``: generate a transparency report for a period in a format, list the stored ones,
download one as it was published, verify it against the records (docs/transparency.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.downloads import send_transparency_report
from safehold.http.params import Id, Offset
from safehold.services import Services
from safehold.transparency.formats import FORMATS
from safehold.transparency.service import MAX_LIST

router = APIRouter(prefix="/v1/transparency/reports", tags=["transparency"], route_class=ContractRoute)
READ = require(Permission.TRANSPARENCY_READ)
WRITE = require(Permission.TRANSPARENCY_WRITE)


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(
        max_length=64,
        description="2026 · 2026-H1 · 2026-Q3 · 2026-11 · 2026-11-03 · 2026-11-01..2026-11-30 · last-30d (stored as "
        "the days it covers). A period not yet ended gives a report marked partial.",
    )
    format: str = Field(max_length=32, description=f"One of: {', '.join(sorted(FORMATS))}.")


@router.post("", status_code=201, summary="Generate and store a transparency report for a period in a format")
def generate(body: ReportRequest, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.transparency.generate(body.period, body.format, who.label)


@router.get("", summary="Stored transparency reports, newest first: {total, reports}")
def list_reports(
    limit: int = Query(50, ge=1, le=MAX_LIST),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _: Principal = Depends(READ),
) -> dict:
    return svc.transparency.list(limit=limit, offset=offset)


@router.get("/{report_id}", summary="One stored report's metadata (period, format, digests, as_of, threshold)")
def get_report(report_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    return svc.transparency.get(report_id)


@router.get(
    "/{report_id}/content",
    summary="The report's bytes exactly as published (SHA-256 in X-Checksum-SHA256)",
    response_class=Response,
    responses={200: {"content": {t: {} for t in sorted({f.media_type for f in FORMATS.values()})}}},
)
def report_content(report_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> Response:
    return send_transparency_report(svc, report_id)


@router.post(
    "/{report_id}/verify",
    summary="Recompute the report's figures from the records now and re-render it: what differs, and whether its "
    "bytes reproduce",
)
def verify_report(report_id: Id, svc: Services = Depends(services), _: Principal = Depends(WRITE)) -> dict:
    return svc.transparency.verify(report_id)
