"""What Safehold tells the platform: policies (decision → actions), webhooks, and the delivery outbox with its
dead-letter list. A webhook's signing secret is shown once, in the answer to the POST that made or rotated it."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.actions.webhooks import ACTION_KINDS
from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.http.params import Id
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

MANAGE = Permission.ACTIONS_MANAGE
DeliveryStatus = Literal["dead", "pending", "delivered", "all"]


def _match(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        raise SafeholdError("policy.invalid", f"Match must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise SafeholdError("policy.invalid", 'Match must be a JSON object, e.g. {"decision": "csam"}.')
    return value


# --------------------------------------------------------------------------------------------- policies


@router.get("/console/admin/policies")
def policies(request: Request, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    return page(request, "admin_policies.html", policies=svc.actions.list_policies(), kinds=ACTION_KINDS)


@router.post("/console/admin/policies")
def create_policy(
    name: str = Form(..., max_length=64),
    trigger: Literal["decision", "auto"] = Form(...),
    match: str = Form("{}", max_length=4000),
    actions: list[str] = Form([]),
    who: Staff = Depends(staff(MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    svc.actions.create_policy(name, trigger, _match(match), actions, enabled=True, actor=who.label)
    return back("/console/admin/policies", "policy_saved")


@router.post("/console/admin/policies/{name}")
def update_policy(
    name: str,
    match: str = Form(..., max_length=4000),
    actions: list[str] = Form([]),
    enabled: bool = Form(False),
    who: Staff = Depends(staff(MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    svc.actions.update_policy(name, match=_match(match), actions=actions, enabled=enabled, actor=who.label)
    return back("/console/admin/policies", "policy_saved")


@router.post("/console/admin/policies/{name}/delete")
def delete_policy(name: str, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    svc.actions.delete_policy(name, actor=who.label)
    return back("/console/admin/policies", "policy_deleted")


# --------------------------------------------------------------------------------------------- webhooks


def _webhooks_page(request: Request, svc: Services, secret: tuple[str, str] | None = None) -> Response:
    return page(request, "admin_webhooks.html", webhooks=svc.webhooks.list(), kinds=ACTION_KINDS, secret=secret)


@router.get("/console/admin/webhooks")
def webhooks(request: Request, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    return _webhooks_page(request, svc)


@router.post("/console/admin/webhooks")
def create_webhook(
    request: Request,
    name: str = Form(..., max_length=64),
    url: str = Form(..., max_length=2000),
    events: list[str] = Form([]),
    who: Staff = Depends(staff(MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    hook, secret = svc.webhooks.create(name, url, events=events or None, actor=who.label)
    return _webhooks_page(request, svc, secret=(hook["name"], secret))


@router.post("/console/admin/webhooks/{name}")
def update_webhook(
    name: str,
    url: str = Form(..., max_length=2000),
    events: list[str] = Form([]),
    enabled: bool = Form(False),
    who: Staff = Depends(staff(MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    svc.webhooks.update(name, url=url, events=events, enabled=enabled, actor=who.label)
    return back("/console/admin/webhooks", "webhook_saved")


@router.post("/console/admin/webhooks/{name}/rotate")
def rotate_secret(
    request: Request, name: str, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)
) -> Response:
    return _webhooks_page(request, svc, secret=(name, svc.webhooks.rotate_secret(name, actor=who.label)))


@router.post("/console/admin/webhooks/{name}/test")
def test_webhook(name: str, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    svc.webhooks.test(name, actor=who.label)
    return back("/console/admin/deliveries?status=pending", "webhook_tested")


@router.post("/console/admin/webhooks/{name}/delete")
def delete_webhook(name: str, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    svc.webhooks.delete(name, actor=who.label)
    return back("/console/admin/webhooks", "webhook_deleted")


# ------------------------------------------------------------------------------------------- deliveries


@router.get("/console/admin/deliveries")
def deliveries(
    request: Request,
    status: DeliveryStatus = Query("dead"),
    webhook: str | None = Query(None, max_length=64),
    who: Staff = Depends(staff(MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    rows = svc.webhooks.deliveries(status=None if status == "all" else status, webhook=webhook or None, limit=200)
    return page(request, "admin_deliveries.html", deliveries=rows, shown=status, webhook=webhook or "")


@router.post("/console/admin/deliveries/{delivery_id}/retry")
def retry_delivery(delivery_id: Id, who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    svc.webhooks.retry(delivery_id, actor=who.label)
    return back("/console/admin/deliveries?status=pending", "retried")
