"""Preserved evidence over the API: the register, legal holds, law-enforcement exports, the retention purge.

Reading the register (hashes, dates, holds) needs ``evidence.read``; anything that decrypts (a file's content, an
export) needs ``evidence.access`` and is recorded in the audit log with its stated purpose (chain of custody).
Content answers are never cached and are sandboxed like review media. The fixed paths (``holds``, ``export``,
``purge``) are declared before ``/evidence/{evidence_id}`` so they are never read as an id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from safehold.api.contract import ContractRoute, NotBlank, OneOf, error_responses
from safehold.api.deps import require, services
from safehold.api.routes.review import MEDIA_HEADERS
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.downloads import send_package
from safehold.http.params import BodyId, Id, Offset, QueryId
from safehold.review.media import content_type
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["evidence"], route_class=ContractRoute)
READ = require(Permission.EVIDENCE_READ)
ACCESS = require(Permission.EVIDENCE_ACCESS)
MANAGE = require(Permission.EVIDENCE_MANAGE)
#: Reading or exporting evidence that the retention purge deleted.
PURGED = error_responses(410)
#: Content types of preserved records that are not media files.
KIND_TYPES = {"text": "text/plain; charset=utf-8", "document": "application/xml"}


class HoldBody(OneOf):
    one_of = ("case_id", "account_id")
    case_id: BodyId = Field(None, description="Hold this case's evidence…")
    account_id: str = Field(None, min_length=1, max_length=128, description="…or every case's of this account.")
    reason: NotBlank = Field(max_length=2000)
    reference: str | None = Field(None, max_length=128, description="The preservation request's number.")
    days: int | None = Field(None, ge=1, le=36_500, description="Lapses after this many days; none: until released.")


class ReleaseBody(BaseModel):
    note: str | None = Field(None, max_length=2000)


class ExportBody(OneOf):
    one_of = ("case_id", "report_id")
    case_id: BodyId = None
    report_id: BodyId = None
    reason: NotBlank = Field(max_length=2000, description="Why, e.g. the legal process it answers.")


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: StrictBool = Field(description="true: only list what would be deleted. Required, so that a bare POST "
                                "never deletes anything.")  # fmt: skip


@router.get("/evidence", summary="The evidence register: hashes, sizes, dates (no content)")
def list_evidence(
    case_id: QueryId = None,
    account_id: str | None = Query(None, max_length=128),
    include_purged: bool = False,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _: Principal = Depends(READ),
) -> list[dict]:
    return svc.evidence.list(
        case_id=case_id, account_id=account_id, include_purged=include_purged, limit=limit, offset=offset
    )


@router.get("/evidence/holds", summary="Legal holds (active ones unless ?active_only=false)")
def list_holds(active_only: bool = True, svc: Services = Depends(services), _: Principal = Depends(READ)) -> list[dict]:
    return svc.evidence.holds(active_only=active_only)


@router.post("/evidence/holds", status_code=201, summary="Place a legal hold on a case's or an account's evidence")
def place_hold(body: HoldBody, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.evidence.hold(
        case_id=body.case_id,
        account_id=body.account_id,
        reason=body.reason,
        actor=who.label,
        reference=body.reference,
        days=body.days,
    )


@router.post("/evidence/holds/{hold_id}/release", summary="Release a legal hold (normal retention applies again)")
def release_hold(
    hold_id: Id, body: ReleaseBody | None = None, svc: Services = Depends(services), who: Principal = Depends(MANAGE)
) -> dict:
    return svc.evidence.release(hold_id, who.label, note=body.note if body else None)


@router.post(
    "/evidence/export",
    summary="Law-enforcement package for a case or a report (zip); its SHA-256 in X-Checksum-SHA256",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}, **PURGED},
)
def export_evidence(body: ExportBody, svc: Services = Depends(services), who: Principal = Depends(ACCESS)):
    return send_package(
        svc,
        lambda dest: svc.evidence.export(
            case_id=body.case_id, report_id=body.report_id, actor=who.label, reason=body.reason, dest_dir=dest
        ),
    )


@router.post("/evidence/purge", summary="Delete expired evidence now, recording proof of each deletion")
def purge_evidence(body: PurgeBody, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.evidence.purge(who.label, dry_run=body.dry_run)


@router.get(
    "/evidence/{evidence_id}",
    summary="One record with its retention (expiry, holds, reports needing it)",
    responses=PURGED,
)
def get_evidence(evidence_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    return svc.evidence.get(evidence_id)


@router.get(
    "/evidence/{evidence_id}/content",
    summary="The decrypted content, checked against its SHA-256; recorded with its purpose",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **PURGED},
)
def evidence_content(
    evidence_id: Id,
    purpose: Annotated[
        NotBlank, Query(max_length=500, description="Why it is opened (kept in the audit log; not blank).")
    ],
    svc: Services = Depends(services),
    who: Principal = Depends(ACCESS),
) -> Response:
    item, data = svc.evidence.read(evidence_id, who.label, purpose)
    media_type = KIND_TYPES.get(item.get("kind")) or content_type(data, item.get("filename"))
    headers = {
        **MEDIA_HEADERS,
        "Content-Disposition": f'attachment; filename="evidence-{evidence_id}"',
        "X-Checksum-SHA256": item["sha256"],
    }
    return Response(data, media_type=media_type, headers=headers)
