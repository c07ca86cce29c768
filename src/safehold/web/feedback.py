"""Feedback to hash exchanges: reviewers' opinions on the exchanges' entries, by status or for one entry, and the
retry of a failed one (docs/sharing.md#feedback-and-contribution)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.http.params import Id, QueryId
from safehold.services import Services
from safehold.sharing.feedback import STATUSES
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

Shown = Literal[STATUSES + ("all",)]
#: Opinions one page shows (the filters narrow it; the API pages through all of them).
PAGE = 200


@router.get("/console/feedback")
def feedback(
    request: Request,
    status: Shown = Query("all"),
    entry: QueryId = None,
    exchange: str | None = Query(None, max_length=64),
    who: Staff = Depends(staff(Permission.BANKS_READ)),
    svc: Services = Depends(services),
) -> Response:
    rows = svc.feedback.list(
        status=None if status == "all" else status, entry_id=entry, exchange=exchange or None, limit=PAGE
    )
    return page(request, "feedback.html", rows=rows, shown=status, entry=entry, exchange=exchange or "",
                statuses=STATUSES)  # fmt: skip


@router.post("/console/feedback/{feedback_id}/retry")
def retry(feedback_id: Id, who: Staff = Depends(staff(Permission.BANKS_WRITE)), svc: Services = Depends(services)):
    svc.feedback.retry(feedback_id, actor=who.label)
    return back("/console/feedback?status=queued", "feedback_retried")
