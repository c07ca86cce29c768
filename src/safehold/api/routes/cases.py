"""Events in, cases out: the platform's event intake, the case queues, claims, and the SLA setting."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, create_model
from starlette.concurrency import run_in_threadpool

from safehold import jsonlimits
from safehold.api.contract import ContractRoute, body_schema
from safehold.api.deps import require, services
from safehold.api.multipart import read_upload_form
from safehold.api.routes.scan import is_multipart, json_body
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, demand
from safehold.cases.priority import BAND_NAMES, MAX_SLA_HOURS
from safehold.cases.service import ACTIVE
from safehold.cases.taxonomy import QUEUES, STATUSES
from safehold.errors import SafeholdError
from safehold.http.params import Id, Offset
from safehold.pipeline.events import IDEMPOTENCY_HEADER_PATTERN, EventIn
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["cases"], route_class=ContractRoute)
READ = Depends(require(Permission.CASES_READ))
REVIEW = Depends(require(Permission.CASES_REVIEW))

_EVENT = body_schema(EventIn)
_EVENT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _EVENT},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "event": {**_EVENT, "description": "The event, as a JSON part."},
                    "file": {"type": "string", "format": "binary", "description": "The content's file (optional)."},
                },
                "required": ["event"],
                # A file comes with a content event only (event.file_needs_content otherwise).
                "if": {"properties": {"event": {"properties": {"type": {"const": "account"}}}}},
                "then": {"properties": {"file": False}},
            },
            "encoding": {"event": {"contentType": "application/json"}},
        },
    },
}


class ClaimBody(BaseModel):
    override: bool = False


#: New SLA hours for some bands (at least one): each above 0 and at most a year. A band left out keeps its hours.
SlaHours = create_model(
    "SlaHours",
    __config__=ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}),
    **{
        band: (StrictFloat, Field(None, gt=0, le=MAX_SLA_HOURS, description=f"Hours to decide a {band} case."))
        for band in BAND_NAMES
    },
)


@router.post(
    "/events",
    summary="Send a content or account event (JSON, or multipart 'event' + 'file'); needs an Idempotency-Key",
    openapi_extra={"requestBody": _EVENT_BODY},
)
async def ingest_event(
    request: Request,
    idempotency_key: str = Header(
        None,
        description="Makes a retry safe; required here or as the event's idempotency_key (the same if both).",
        json_schema_extra={"pattern": IDEMPOTENCY_HEADER_PATTERN},
    ),
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.EVENTS_WRITE)),
) -> dict:
    data = name = None
    if is_multipart(request):
        form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes)
        raw = form.fields.get("event")
        if raw is None:
            raise SafeholdError("request.missing_event", "Send the event as a multipart text field named 'event'.")
        body = jsonlimits.loads(raw, svc.settings.max_json_depth, "the event")
        upload = form.file("file")
        if upload is not None:
            name, data = upload.filename, upload.content()
    else:
        body = await json_body(request)
    if not isinstance(body, dict):
        raise SafeholdError("request.invalid", "The event is a JSON object.", status=422)
    return await run_in_threadpool(
        svc.events.ingest, who, body, file=data, filename=name, idempotency_key=idempotency_key
    )


@router.get("/cases", summary="A page of cases, most urgent first")
def list_cases(
    status: Literal[(ACTIVE, "all", *STATUSES)] = Query(ACTIVE, description="active: every status but closed."),
    queue: Literal[QUEUES] | None = None,
    band: Literal[BAND_NAMES] | None = None,
    overdue: bool = False,
    claimed_by: str | None = None,
    account_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    return svc.cases.list(
        status=status,
        queue=queue,
        band=band,
        overdue=overdue,
        claimed_by=claimed_by,
        account_id=account_id,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/counts", summary="Active cases per queue and band; overdue, awaiting confirmation, escalated")
def case_counts(svc: Services = Depends(services), _=READ) -> dict:
    return svc.cases.counts()


@router.get("/cases/{case_id}", summary="One case: items, signals, decisions, actions, history, related cases")
def get_case(case_id: Id, svc: Services = Depends(services), _=READ) -> dict:
    return svc.cases.get(case_id)


@router.post("/cases/{case_id}/claim", summary="Claim a case for review (or renew the claim)")
def claim_case(
    case_id: Id,
    request: Request,
    body: ClaimBody | None = None,
    svc: Services = Depends(services),
    who: Principal = REVIEW,
) -> dict:
    override = _override(request, svc, who, body)
    return svc.cases.claim(case_id, who.label, override=override)


@router.post("/cases/{case_id}/release", summary="Give a claimed case back")
def release_case(
    case_id: Id,
    request: Request,
    body: ClaimBody | None = None,
    svc: Services = Depends(services),
    who: Principal = REVIEW,
) -> dict:
    override = _override(request, svc, who, body)
    return svc.cases.release(case_id, who.label, override=override)


@router.get("/settings/sla", summary="SLA hours per priority band")
def get_sla(svc: Services = Depends(services), _=READ) -> dict:
    return svc.cases.sla_hours()


@router.put("/settings/sla", summary="Change the SLA hours of some bands (open cases get new due times)")
def set_sla(
    hours: SlaHours,
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.SETTINGS_MANAGE)),
) -> dict:
    return svc.cases.set_sla_hours(hours.model_dump(exclude_unset=True), who.label)


def _override(request: Request, svc: Services, who: Principal, body: ClaimBody | None) -> bool:
    """Overriding another reviewer's claim is for senior reviewers; a refusal is audited like any other."""
    override = bool(body and body.override)
    if override:
        route = f"{request.method} {request.url.path}"
        demand(svc.audit, who.role, who.label, Permission.CASES_SENIOR, route, "override a claim")
    return override
