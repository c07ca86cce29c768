"""The Classifiers page: the enabled classifiers, each one's policy (a form for admins) and the precision its
reviewed hits give per threshold (docs/classifiers.md)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: A select's "the classifier's default" choice.
DEFAULT = ""


@router.get("/console/classifiers")
def classifiers(
    request: Request, who: Staff = Depends(staff(Permission.STATS_READ)), svc: Services = Depends(services)
) -> Response:
    rows = [{**c, "precision": svc.classifier_policies.precision(c["name"])} for c in svc.classifier_policies.list()]
    return page(request, "classifiers.html", classifiers=rows)


@router.post("/console/classifiers/{name}/policy")
def set_policy(
    name: str,
    threshold: str = Form("", max_length=32),
    needs_age_signal: Literal["", "yes", "no"] = Form(DEFAULT),
    alone: Literal["", "ignore", "case"] = Form(DEFAULT),
    auto_action: bool = Form(False),
    category: str = Form("", max_length=64),
    who: Staff = Depends(staff(Permission.SETTINGS_MANAGE)),
    svc: Services = Depends(services),
) -> Response:
    """The whole form is sent: an empty field puts its setting back to the classifier's default."""
    changes = {
        "threshold": _number(threshold),
        "needs_age_signal": {"yes": True, "no": False}.get(needs_age_signal),
        "alone": alone or None,
        "auto_action": auto_action,
        "category": category.strip() or None,
    }
    svc.classifier_policies.change(name, who.label, changes)
    return back("/console/classifiers", "classifier_policy_saved")


def _number(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise SafeholdError(
            "classifier.invalid_policy", "threshold must be a number above 0 and at most 1.", status=422
        ) from None
