"""The console's Screening services page: every external classification service with its state, queue depth and
last error, and (for administrators) adding one and switching one off or on.

Everything goes through the service calls ``/v1/screening`` and ``safehold screening`` use. Credentials are
password fields, never filled back in: the page never holds a secret it was not just given.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.screening.service import types
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.forms import schema_fields
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = "/console/admin/screening"
READ = Permission.STATS_READ
WRITE = Permission.SETTINGS_MANAGE


@router.get(PAGE)
def screening_page(request: Request, who: Staff = Depends(staff(READ)), svc: Services = Depends(services)) -> Response:
    return page(
        request, "admin_screening.html", services=svc.screening.list(), queue=svc.screening.queue(), types=types()
    )


@router.post(PAGE)
async def create_service(
    request: Request,
    name: str = Form(..., max_length=64),
    type: str = Form(..., max_length=32),
    who: Staff = Depends(staff(WRITE)),
    svc: Services = Depends(services),
) -> Response:
    form = await request.form()
    kind = next((t for t in types() if t["type"] == type), None)
    settings = schema_fields(form, f"setting.{type}.", kind["settings"] if kind else {})
    credentials = schema_fields(form, f"credential.{type}.", kind["credentials"] if kind else {}) or None
    svc.screening.create(name, type, settings, credentials, actor=who.label)
    return back(PAGE, "screening_created")


@router.post(PAGE + "/{name}")
def switch(
    name: str, enabled: bool = Form(...), who: Staff = Depends(staff(WRITE)), svc: Services = Depends(services)
) -> Response:
    svc.screening.update(name, enabled=enabled, actor=who.label)
    return back(PAGE, "screening_updated")
