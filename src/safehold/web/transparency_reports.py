"""The Transparency reports page: the stored reports with their download links, and a form that generates one
for a period in a format (docs/transparency.md, "Stored reports and reproducing them")."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.http.downloads import send_transparency_report
from safehold.http.params import Id, Offset
from safehold.services import Services
from safehold.transparency.formats import FORMATS
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
PAGE = "/console/transparency"
#: Reports a page lists.
PER_PAGE = 50


@router.get(PAGE)
def reports_page(
    request: Request,
    offset: Offset = 0,
    who: Staff = Depends(staff(Permission.TRANSPARENCY_READ)),
    svc: Services = Depends(services),
) -> Response:
    listed = svc.transparency.list(limit=PER_PAGE, offset=offset)
    formats = [{"name": f.name, "title": f.title} for f in FORMATS.values()]
    return page(
        request,
        "transparency_reports.html",
        reports=listed["reports"],
        total=listed["total"],
        offset=offset,
        per_page=PER_PAGE,
        formats=formats,
        min_cell=svc.settings.transparency_min_cell,
    )


@router.post(f"{PAGE}/reports")
def generate(
    period: str = Form(..., max_length=64),
    format: str = Form(..., max_length=32),
    who: Staff = Depends(staff(Permission.TRANSPARENCY_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    svc.transparency.generate(period.strip(), format, who.label)
    return back(PAGE, "transparency_report_generated")


@router.get(f"{PAGE}/reports/{{report_id}}/content")
def download(
    report_id: Id, who: Staff = Depends(staff(Permission.TRANSPARENCY_READ)), svc: Services = Depends(services)
) -> Response:
    """The stored bytes as published, saved under the report's own name."""
    return send_transparency_report(svc, report_id)
