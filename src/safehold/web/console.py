"""The console's router: the start page at ``/`` and every console area, so the app includes one router.

Areas: log-in (auth), queues and the reviewer's own page (queue), cases and media (cases), text safety (text),
reports to authorities and preserved evidence (reports), administration (admin, exchanges, outbound), feedback to
hash exchanges (feedback), classifier policies and precision (classifiers), the audit log (audit), transparency
(the overview; the stored transparency reports), operator rules and their named lists (rules), and the static
CSS/JS.
None of it is in the OpenAPI schema: the console is for people; programs use /v1.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from safehold.web import (
    accounts,
    admin,
    audit,
    auth,
    cases,
    classifiers,
    exchanges,
    feedback,
    live,
    outbound,
    queue,
    reports,
    rules,
    safety,
    screening,
    static_files,
    text,
    transparency,
    transparency_reports,
    user_reports,
)
from safehold.web import contact as contact_policy
from safehold.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/")
def start_page(request: Request) -> Response:
    return page(request, "start.html")


for _area in (
    auth,
    queue,
    cases,
    text,
    accounts,
    reports,
    admin,
    exchanges,
    outbound,
    feedback,
    live,
    audit,
    safety,
    screening,
    classifiers,
    rules,
    contact_policy,
    transparency,
    transparency_reports,
    user_reports,
    static_files,
):
    router.include_router(_area.router)
