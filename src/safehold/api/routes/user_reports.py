"""User and trusted-flagger reports (``/v1/user-reports``) and appeals (``/v1/appeals``): docs/user-reports.md.

The platform sends its users' reports and the reported side's appeals with its key (``events.write``) and reads
their status; staff list them (``cases.read``) and a reviewer who took no part in the decision reviews an appeal
(``cases.review``). The rules live in :mod:`safehold.intake`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.params import Id, Offset
from safehold.intake.appeals import STATUSES as APPEAL_STATUSES
from safehold.intake.appeals import AppealIn, AppealReviewIn
from safehold.intake.service import CATEGORIES, STATUSES, UserReportIn
from safehold.pipeline.events import IDEMPOTENCY_HEADER_PATTERN
from safehold.services import Services

router = APIRouter(tags=["user reports"], route_class=ContractRoute)
PLATFORM = require(Permission.EVENTS_WRITE)
READ = require(Permission.CASES_READ)
REVIEW = require(Permission.CASES_REVIEW)


def _body(model) -> dict:
    return model.model_dump(mode="json", exclude_unset=True)


@router.post(
    "/v1/user-reports",
    status_code=201,
    summary="Send a user's or trusted flagger's report; needs an Idempotency-Key",
    description="201 with the report's id, its case and priority, and for a child's own urgent report the help "
    "resources to show (`help`); 200 with `duplicate: true` for a retry with the same key and body, 409 "
    "`user_report.idempotency_conflict` for another body.",
)
async def create_user_report(
    body: UserReportIn,
    response: Response,
    idempotency_key: str = Header(
        None,
        description="Makes a retry safe; required here or as the report's idempotency_key (the same if both).",
        json_schema_extra={"pattern": IDEMPOTENCY_HEADER_PATTERN},
    ),
    svc: Services = Depends(services),
    who: Principal = Depends(PLATFORM),
) -> dict:
    out = await run_in_threadpool(svc.user_reports.submit, who, _body(body), idempotency_key=idempotency_key)
    if out.get("duplicate"):
        response.status_code = 200
    return out


@router.get("/v1/user-reports", summary="A page of user reports, newest first (staff)")
def list_user_reports(
    status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
    category: Literal[tuple(CATEGORIES)] | None = None,  # type: ignore[valid-type]
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _: Principal = Depends(READ),
) -> dict:
    return svc.user_reports.list(status=status, category=category, limit=limit, offset=offset)


@router.post(
    "/v1/user-reports/form-tokens",
    status_code=201,
    summary="A public token for the embeddable report form (/report?token=…), shown once",
)
def create_form_token(svc: Services = Depends(services), who: Principal = Depends(PLATFORM)) -> dict:
    return svc.user_reports.create_form_token(who)


@router.delete("/v1/user-reports/form-tokens/{token_id}", summary="Revoke a report form token")
def revoke_form_token(token_id: Id, svc: Services = Depends(services), who: Principal = Depends(PLATFORM)) -> dict:
    return svc.user_reports.revoke_form_token(token_id, who)


@router.get("/v1/user-reports/{report_id}", summary="A user report's status and outcome")
def get_user_report(report_id: Id, svc: Services = Depends(services), who: Principal = Depends(PLATFORM)) -> dict:
    return svc.user_reports.get(report_id, who)


@router.post(
    "/v1/appeals",
    status_code=201,
    summary="The reported side's appeal against a decided case",
    description="201 with the appeal; 200 with `duplicate: true` when the decision already has an appeal waiting; "
    "409 `appeal.not_decided` for a case without a final decision, `appeal.already_reviewed` when the decision "
    "was already reviewed on appeal.",
)
def create_appeal(
    body: AppealIn, response: Response, svc: Services = Depends(services), who: Principal = Depends(PLATFORM)
) -> dict:
    out = svc.appeals.create(who, _body(body))
    if out.get("duplicate"):
        response.status_code = 200
    return out


@router.get("/v1/appeals", summary="A page of appeals, newest first (staff)")
def list_appeals(
    status: Literal[APPEAL_STATUSES] | None = None,  # type: ignore[valid-type]
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _: Principal = Depends(READ),
) -> dict:
    return svc.appeals.list(status=status, limit=limit, offset=offset)


@router.get("/v1/appeals/{appeal_id}", summary="An appeal's status and outcome")
def get_appeal(appeal_id: Id, svc: Services = Depends(services), who: Principal = Depends(PLATFORM)) -> dict:
    return svc.appeals.get(appeal_id, who)


@router.post(
    "/v1/appeals/{appeal_id}/review",
    summary="The second review of an appeal: upheld or overturned, by a reviewer who took no part in the decision",
    description="409 `appeal.same_reviewer` for the decision's author or its confirming reviewer, "
    "`appeal.already_reviewed` for an appeal already reviewed.",
)
def review_appeal(
    appeal_id: Id, body: AppealReviewIn, svc: Services = Depends(services), who: Principal = Depends(REVIEW)
) -> dict:
    return svc.appeals.review(appeal_id, who, _body(body))
