"""The console's Exchanges page: every hash exchange with its state, fetch now, switch off or on, add one.

Everything goes through the service calls ``/v1/exchanges`` and ``safehold exchange`` use. The add form shows each
type's settings and credentials as fields (credentials as password fields, never filled back in: the page never
holds a secret it was not just given).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.services import Services
from safehold.sharing.service import types
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.forms import schema_fields
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE = "/console/admin/exchanges"
READ = Permission.BANKS_READ
WRITE = Permission.BANKS_WRITE


@router.get(PAGE)
def exchanges_page(request: Request, who: Staff = Depends(staff(READ)), svc: Services = Depends(services)) -> Response:
    return page(
        request, "admin_exchanges.html", exchanges=svc.exchanges.list(), types=types(),
        banks=[b.name for b in svc.banks.list()],
    )  # fmt: skip


@router.post(PAGE)
async def create_exchange(
    request: Request,
    name: str = Form(..., max_length=64),
    type: str = Form(..., max_length=32),
    bank: str = Form(..., max_length=64),
    every_seconds: int | None = Form(None),
    who: Staff = Depends(staff(WRITE)),
    svc: Services = Depends(services),
) -> Response:
    form = await request.form()
    kind = next((t for t in types() if t["name"] == type), None)
    settings = schema_fields(form, f"setting.{type}.", kind["settings"] if kind else {})
    credentials = schema_fields(form, f"credential.{type}.", (kind or {}).get("credentials") or {}) or None
    svc.exchanges.create(name, type, bank, settings, credentials, every_seconds=every_seconds, actor=who.label)
    return back(PAGE, "exchange_created")


@router.post(PAGE + "/{name}/fetch")
def fetch_now(name: str, who: Staff = Depends(staff(WRITE)), svc: Services = Depends(services)) -> Response:
    svc.exchanges.fetch_in_background(name, actor=who.label)
    return back(PAGE, "exchange_fetching")


@router.post(PAGE + "/{name}")
def switch(
    name: str, enabled: bool = Form(...), who: Staff = Depends(staff(WRITE)), svc: Services = Depends(services)
) -> Response:
    svc.exchanges.update(name, enabled=enabled, actor=who.label)
    return back(PAGE, "exchange_updated")


@router.post(PAGE + "/{name}/delete")
def delete(name: str, who: Staff = Depends(staff(WRITE)), svc: Services = Depends(services)) -> Response:
    svc.exchanges.delete(name, actor=who.label)
    return back(PAGE, "exchange_deleted")
