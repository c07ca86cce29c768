"""The audit log for auditors and admins: records page by page, and a check of the whole hash chain.

Reading and verifying are not themselves recorded (as in the API): they change nothing, and recording every page
view would double the log. Exports, which take data away, stay on the API and CLI where they are recorded.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.http.params import AfterId
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

READ = Permission.AUDIT_READ
PAGE_SIZE = 100


@router.get("/console/audit")
def records(
    request: Request,
    after_seq: AfterId = 0,
    action: str = Query("", max_length=64),
    who: Staff = Depends(staff(READ)),
    svc: Services = Depends(services),
) -> Response:
    rows = svc.audit.list(limit=PAGE_SIZE, after_seq=after_seq, action=action or None)
    more = rows[-1]["seq"] if len(rows) == PAGE_SIZE else None
    return page(request, "audit.html", records=rows, action=action, after_seq=after_seq, next_after=more)


@router.get("/console/audit/verify")
def verify(request: Request, who: Staff = Depends(staff(READ)), svc: Services = Depends(services)) -> Response:
    result = svc.audit.verify()
    latest = max(0, (result.head_seq or 0) - PAGE_SIZE)
    return page(request, "audit_verify.html", result=result, latest_after=latest)
