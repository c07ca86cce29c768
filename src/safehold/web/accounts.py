"""The console's accounts page: look up an account's age band, the rule and signal that decided, every signal with
its source, confidence and time, and record a reviewer's finding (safehold.safety.ages).

Reading needs ``ages.read``; a finding needs ``ages.write`` and, since it is recorded as a ``reviewer`` signal
that outranks every other, ``cases.review``. The account is named in the query string, not the path: a
platform's account ids may hold any character.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.agebands import BANDS, MINOR_BANDS
from safehold.auth.roles import Permission, demand
from safehold.safety.ages import MAX_ID
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
RECENT = 25
#: What a reviewer may find: a band (``unknown`` would decide nothing, see safehold.safety.ages).
FINDINGS = (*MINOR_BANDS, "adult")


def account_path(account_id: str) -> str:
    from urllib.parse import quote

    return "/console/accounts?account_id=" + quote(account_id, safe="")


@router.get("/console/accounts")
def accounts_page(
    request: Request,
    account_id: str | None = Query(None, max_length=MAX_ID),
    band: str | None = Query(None, max_length=8),
    who: Staff = Depends(staff(Permission.AGES_READ)),
    svc: Services = Depends(services),
) -> Response:
    band = band if band in BANDS else None
    context: dict = {"bands": BANDS, "band": band, "account_id": account_id or "", "findings": FINDINGS}
    if account_id and account_id.strip():
        context["age"] = svc.ages.show(account_id)
    else:
        context["recent"] = svc.ages.list(band=band, limit=RECENT)
    context["may_find"] = who.can(Permission.AGES_WRITE) and who.can(Permission.CASES_REVIEW)
    return page(request, "accounts.html", **context)


@router.post("/console/accounts/finding")
def record_finding(
    request: Request,
    account_id: str = Form(..., min_length=1, max_length=MAX_ID),
    band: str = Form(..., max_length=8),
    reference: str | None = Form(None, max_length=200),
    who: Staff = Depends(staff(Permission.AGES_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    demand(svc.audit, who.role, who.label, Permission.CASES_REVIEW, f"POST {request.url.path}", "record a finding")
    svc.ages.add(
        who.label, account_id, "reviewer", band=band, method="review", reference=(reference or "").strip() or None
    )
    return back(account_path(account_id), "age_recorded")
