"""The embeddable report form (``/report?token=…``): how a platform's users report without the platform's API key.

The platform creates a form token (``POST /v1/user-reports/form-tokens``) and shows this page, in a frame or as a
link, with the token in its address. The token allows creating user reports for that platform and nothing else;
each client address may send ``SAFEHOLD_USER_REPORT_FORM_PER_MINUTE`` reports a minute. The page is plain HTML
(labels, a fieldset and legend for the category, errors in an alert the screen reader announces and tied to the
fields) and needs no script. It may be framed by any site (it carries no session and no secret beyond the token
the platform already shows); every other console page refuses to be framed.

Staff see the appeals at ``/console/appeals``; a reviewer who took no part in a decision reviews its appeal there
(the service refuses the others: ``appeal.same_reviewer``).
"""

from __future__ import annotations

import secrets
from typing import Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.http.params import Id
from safehold.intake.appeals import MAX_REASON, OUTCOMES
from safehold.intake.appeals import STATUSES as APPEAL_STATUSES
from safehold.intake.service import CATEGORY_LABELS
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, client_ip, services, staff
from safehold.web.render import SECURITY_HEADERS, page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: Ages a reporter may say they are (the form's words for safehold.agebands).
AGE_CHOICES = (
    ("unknown", "I'd rather not say"),
    ("under13", "Under 13"),
    ("13-15", "13 to 15"),
    ("16-17", "16 or 17"),
    ("adult", "18 or over"),
)
#: The form may be framed by the platform's pages: the console's policy, with any frame ancestor.
FRAMED_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace("frame-ancestors 'none'", "frame-ancestors *")


def _form(request: Request, token: str, *, status: int = 200, error: str | None = None, values=None, done=None):
    response = page(
        request,
        "user_report_form.html",
        status=status,
        token=token,
        nonce=secrets.token_urlsafe(18),
        categories=CATEGORY_LABELS,
        ages=AGE_CHOICES,
        error=error,
        values=values or {},
        done=done,
    )
    response.headers["Content-Security-Policy"] = FRAMED_CSP
    del response.headers["X-Frame-Options"]
    return response


@router.get("/report")
def report_form(
    request: Request,
    token: str = Query("", max_length=200),
    ref: str = Query("", max_length=128, description="The platform's reference, sent back in the outcome webhook."),
    svc: Services = Depends(services),
) -> Response:
    try:
        svc.user_reports.check_token(token)
    except SafeholdError as exc:
        return _form(request, "", status=exc.status, error=exc.message)
    return _form(request, token, values={"reference": ref})


@router.post("/report")
async def send_report(
    request: Request,
    token: str = Form(""),
    nonce: str = Form(""),
    category: str = Form(""),
    content_id: str = Form(""),
    account_id: str = Form(""),
    description: str = Form(""),
    reporter_age_band: str = Form("unknown"),
    reference: str = Form(""),
    svc: Services = Depends(services),
) -> Response:
    values = {
        "reference": reference.strip(),
        "category": category,
        "content_id": content_id.strip(),
        "account_id": account_id.strip(),
        "description": description.strip(),
        "reporter_age_band": reporter_age_band or "unknown",
    }
    try:
        out = await run_in_threadpool(svc.user_reports.submit_form, token, client_ip(request), values, nonce)
    except SafeholdError as exc:
        response = _form(request, token, status=exc.status, error=_say(exc), values=values)
        if exc.headers:
            response.headers.update(exc.headers)
        return response
    return _form(request, token, status=200, done=out)


def _say(exc: SafeholdError) -> str:
    """The error in words for the person at the form (field errors name the field as the form labels it)."""
    errors = (exc.detail or {}).get("errors") or []
    # A whole-model check (no subject) has an empty ``loc``: it names no field.
    fields = {str(loc[-1]) for e in errors if (loc := e.get("loc"))}
    if "category" in fields:
        return "Please choose what happened."
    if errors and any("content_id or account_id" in str(e.get("msg")) for e in errors):
        return "Please say which post or which account you are reporting."
    if fields & {"content_id", "account_id"}:
        return "The post or account reference is too long."
    if "description" in fields:
        return "Your description is too long (4000 characters at most)."
    return exc.message


# ---------------------------------------------------------------------------------------- appeals (staff)


@router.get("/console/appeals")
def appeals_page(
    request: Request,
    status: Literal[APPEAL_STATUSES + ("all",)] = Query("received"),  # type: ignore[valid-type]
    who: Staff = Depends(staff(Permission.CASES_READ)),
    svc: Services = Depends(services),
) -> Response:
    rows = svc.appeals.list(status=None if status == "all" else status, limit=200)["appeals"]
    return page(request, "appeals.html", rows=rows, shown=status, statuses=APPEAL_STATUSES, outcomes=OUTCOMES,
                max_note=MAX_REASON)  # fmt: skip


@router.post("/console/appeals/{appeal_id}/review")
def review_appeal(
    appeal_id: Id,
    outcome: Literal[OUTCOMES] = Form(...),  # type: ignore[valid-type]
    note: str = Form("", max_length=MAX_REASON),
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    body = {"outcome": outcome, **({"note": note} if note else {})}
    svc.appeals.review(appeal_id, who.principal, body)
    return back("/console/appeals?status=all", "appeal_reviewed")
