"""Feedback to hash exchanges (reviewers' opinions on their entries) and contributions of confirmed cases' hashes."""

from __future__ import annotations

import io
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.params import AfterId, Id, QueryId
from safehold.services import Services
from safehold.sharing.feedback import MAX_LIST, STATUSES

router = APIRouter(prefix="/v1", tags=["sharing"], route_class=ContractRoute)

READ = Depends(require(Permission.BANKS_READ))
WRITE = require(Permission.BANKS_WRITE)
HASH_FORMATS = {"ncmec-xml": "application/xml", "csv": "text/csv"}


class ContributeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exchange: str = Field(min_length=1, max_length=64, description="The configured exchange to send the hashes to.")


@router.get("/feedback", summary="Opinions for exchanges on their entries, in id order, filtered")
def list_feedback(
    entry_id: QueryId = None,
    case_id: QueryId = None,
    exchange: str | None = Query(None, max_length=64),
    status: Literal[STATUSES] | None = Query(None, description="queued, sent, failed, superseded or unsupported"),
    after_id: AfterId = 0,
    limit: int = Query(100, ge=1, le=MAX_LIST),
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    rows = svc.feedback.list(
        entry_id=entry_id, case_id=case_id, exchange=exchange, status=status, after_id=after_id, limit=limit
    )
    return {"feedback": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None}


@router.post("/feedback/{feedback_id}/retry", summary="Queue a failed opinion again")
def retry_feedback(feedback_id: Id, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.feedback.retry(feedback_id, actor=who.label)


@router.post("/cases/{case_id}/contribute", summary="Send a confirmed case's hashes (never media) to an exchange")
def contribute(
    case_id: Id, body: ContributeBody, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.contributions.contribute(case_id, body.exchange, actor=who.label)


@router.get(
    "/cases/{case_id}/hashes",
    summary="A confirmed case's hashes as NCMEC hash-sharing XML or CSV (never media)",
    response_class=Response,
    responses={200: {"content": {media: {} for media in HASH_FORMATS.values()}}},
)
def case_hashes(
    case_id: Id,
    format: Literal["ncmec-xml", "csv"] = "ncmec-xml",
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.CASES_READ)),
) -> Response:
    buf = io.BytesIO()
    svc.contributions.export(case_id, format, buf, actor=who.label)
    ext = "xml" if format == "ncmec-xml" else "csv"
    return Response(
        buf.getvalue(),
        media_type=HASH_FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-hashes.{ext}"'},
    )
