"""The console's text-safety page: conversations at risk, the term lists in force, and the search guard's counts.

Reviewers see which conversations are heading towards an alert before a case exists (the case itself waits in the
text queue); whoever may change banks may import a term list or switch one off here, through the same service
call as ``PUT /v1/terms/{name}`` and ``safehold terms import``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.http.uploads import read_capped
from safehold.rules.search import variant_summary
from safehold.rules.terms import MAX_CSV_BYTES
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: Conversations below this risk are not worth a reviewer's glance (the scorer's "none" level).
WATCH_FROM = 0.15
DAYS = 30


@router.get("/console/text")
def text_page(
    request: Request, who: Staff = Depends(staff(Permission.CASES_READ)), svc: Services = Depends(services)
) -> Response:
    context: dict = {"conversations": svc.conversations.list(min_score=WATCH_FROM, limit=100), "days": DAYS}
    if who.can(Permission.BANKS_READ):
        context["lists"] = svc.terms.lists()
    if who.can(Permission.STATS_READ):
        rows = svc.search.stats(DAYS)
        totals: dict[tuple, int] = {}
        for r in rows:
            if r["kind"] != "help_click":
                key = (r["kind"], r["action"], r["category"])
                totals[key] = totals.get(key, 0) + r["count"]
        context["search_totals"] = sorted(totals.items(), key=lambda kv: -kv[1])
        context["variants"] = variant_summary(rows)
    return page(request, "text.html", **context)


@router.post("/console/text/terms")
async def import_terms(
    name: str = Form(..., max_length=64),
    file: UploadFile = File(...),
    who: Staff = Depends(staff(Permission.BANKS_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    data = await read_capped(file, MAX_CSV_BYTES)
    svc.terms.put(name, data, who.label)
    return back("/console/text", "terms_imported")


@router.post("/console/text/terms/{name}")
def switch_terms(
    name: str,
    enabled: bool = Form(...),
    who: Staff = Depends(staff(Permission.BANKS_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    svc.terms.set_enabled(name, enabled, who.label)
    return back("/console/text", "terms_updated")
