"""The contact policy page (docs/safety.md#contact-policy): the active policy as a table of rules, a "try it" form,
and, for admins, the policy's JSON to edit (validation problems shown beside it, nothing saved) and a reset.

Every change goes through the service call the API and CLI use, with the signed-in user as the author.
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.safety.contact import KINDS, conditions_text
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
PATH = "/console/safety/contact-policy"
READ = Permission.STATS_READ
#: Trying a check shows the two accounts' age bands.
TRY = Permission.AGES_READ
MANAGE = Permission.SETTINGS_MANAGE
Kind = Literal[KINDS]  # type: ignore[valid-type]
MAX_POLICY_TEXT = 256 * 1024
EMPTY_FORM = {"sender": "", "recipient": "", "kind": "message", "mutual": 0, "prior": False, "follows": False}


def _render(request: Request, svc: Services, *, status: int = 200, **context) -> Response:
    shown = svc.contact.show()
    context.setdefault("policy_text", json.dumps(shown["policy"], indent=2, ensure_ascii=False))
    context.setdefault("errors", [])
    context.setdefault("tried", None)
    context.setdefault("form", EMPTY_FORM)
    blank = {"sender": None, "recipient": None, "kinds": None, "prompt": None, "relax_when_connected": False}
    rules = [{**blank, **r, "when": conditions_text(r)} for r in shown["policy"]["rules"]]
    return page(
        request, "contact_policy.html", status, shown=shown, rules=rules, kinds=KINDS,
        history=svc.contact.history(20), **context,
    )  # fmt: skip


@router.get(PATH)
def contact_policy(
    request: Request,
    sender: str | None = Query(None, max_length=128),
    recipient: str | None = Query(None, max_length=128),
    kind: Kind = Query("message"),
    mutual: int = Query(0, ge=0, le=1_000_000),
    prior: bool = Query(False),
    follows: bool = Query(False),
    who: Staff = Depends(staff(READ)),
    svc: Services = Depends(services),
) -> Response:
    tried = None
    form = {**EMPTY_FORM, "sender": sender or "", "recipient": recipient or "", "kind": kind, "mutual": mutual,
            "prior": prior, "follows": follows}  # fmt: skip
    if sender and recipient and who.can(TRY):
        tried = svc.contact.check(
            sender, recipient, kind, mutual_contacts=mutual, prior_conversation=prior, recipient_follows_sender=follows
        )
    return _render(request, svc, tried=tried, form=form)


@router.post(PATH)
def save_contact_policy(
    request: Request,
    policy: str = Form(..., max_length=MAX_POLICY_TEXT),
    who: Staff = Depends(staff(MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    try:
        doc = json.loads(policy)
    except ValueError as exc:
        errors = [{"loc": "(JSON)", "msg": f"not valid JSON: {exc}"}]
        return _render(request, svc, status=422, policy_text=policy, errors=errors)
    try:
        svc.contact.save(doc, who.label)
    except SafeholdError as exc:
        errors = exc.detail.get("errors") or [{"loc": "(policy)", "msg": exc.message}]
        return _render(request, svc, status=exc.status, policy_text=policy, errors=errors)
    return back(PATH, "policy_saved")


@router.post(f"{PATH}/reset")
def reset_contact_policy(who: Staff = Depends(staff(MANAGE)), svc: Services = Depends(services)) -> Response:
    svc.contact.reset(who.label)
    return back(PATH, "policy_saved")
