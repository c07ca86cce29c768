"""Operator rules in the console (docs/rules.md): the rule list, a rule's editor with its versions and diffs,
approval by a second admin, shadow and live, a backtest, the shadow comparison with the live set, and the named
lists. Admins only (``rules.manage``), like ``/v1/rules``.

Every change is the rule book's own call (:mod:`safehold.rules.book`), with the signed-in user as the actor and
the person: the API and the CLI make the same calls, so approval and the audit log read the same whichever door a
change came through. An expression the book refuses is shown again in its form with the book's message and, when
CEL gives one, the line and column, so the author fixes it where she wrote it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.actions.service import ACTION_KINDS
from safehold.auth.roles import Permission
from safehold.cases.taxonomy import QUEUES
from safehold.errors import SafeholdError
from safehold.rules.book import LIST_KINDS, MAX_DESCRIPTION
from safehold.rules.engine import EFFECTS, MAX_EXPRESSION, MAX_LIST_ITEMS, PRIORITIES
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
ADMIN = staff(Permission.RULES_MANAGE)
#: Form fields of the effect, by effect type (the rest are left out of the effect).
EFFECT_FIELDS = {"open_case": ("priority", "category"), "add_label": ("label",), "route_to_queue": ("queue",),
                 "action": ("name",), "escalate_to_reporting": ()}  # fmt: skip
#: A named list's items in the editor's text area: one a line, at most this many characters in all.
MAX_LIST_TEXT = MAX_LIST_ITEMS * 80


def _choices() -> dict:
    return {
        "effects": list(EFFECTS),
        "priorities": PRIORITIES,
        "queues": QUEUES,
        "actions": ACTION_KINDS,
        "max_expression": MAX_EXPRESSION,
        "max_description": MAX_DESCRIPTION,
    }


def _effect(
    effect_type: str = Form(..., max_length=32),
    priority: str = Form("P2", max_length=8),
    category: str = Form("", max_length=64),
    label: str = Form("", max_length=64),
    queue: str = Form("", max_length=32),
    action: str = Form("", max_length=64),
) -> dict:
    """The effect as the book takes it, from the rule forms' effect fields (a dependency of the create and edit
    routes; the book checks it)."""
    given = {"priority": priority, "category": category.strip(), "label": label.strip(), "queue": queue,
             "name": action}  # fmt: skip
    return {"type": effect_type, **{k: given[k] for k in EFFECT_FIELDS.get(effect_type, ()) if given[k]}}


def _problem(exc: SafeholdError) -> dict:
    detail = exc.detail or {}
    return {"code": exc.code, "message": exc.message, "line": detail.get("line"), "column": detail.get("column")}


# ------------------------------------------------------------------------------------------------ rules


@router.get("/console/rules")
def rules(request: Request, who: Staff = Depends(ADMIN), svc: Services = Depends(services)) -> Response:
    return _rules_page(request, svc)


def _rules_page(request: Request, svc: Services, status: int = 200, problem=None, form=None) -> Response:
    return page(
        request, "rules.html", status=status, rules=svc.rules.all_rules(), lists=svc.rules.lists(),
        problem=problem, form=form or {}, **_choices(),
    )  # fmt: skip


@router.post("/console/rules")
def create_rule(
    request: Request,
    name: str = Form(..., max_length=48),
    expression: str = Form(..., max_length=MAX_EXPRESSION),
    description: str = Form("", max_length=MAX_DESCRIPTION),
    effect: dict = Depends(_effect),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    try:
        svc.rules.create(name, expression, effect, who.label, description=description, person=who.principal.person)
    except SafeholdError as exc:
        if exc.status != 400:
            raise
        form = {"name": name, "expression": expression, "description": description, "effect": effect}
        return _rules_page(request, svc, status=400, problem=_problem(exc), form=form)
    return back(f"/console/rules/{name}", "rule_created")


@router.get("/console/rules/{name}")
def rule(request: Request, name: str, who: Staff = Depends(ADMIN), svc: Services = Depends(services)) -> Response:
    return _rule_page(request, svc, name, who)


def _rule_page(request: Request, svc: Services, name: str, who: Staff, status: int = 200, **context) -> Response:
    shown = svc.rules.show(name)
    newest = shown["versions"][-1]
    context.setdefault("form", {"expression": newest["expression"], "description": newest["description"],
                                "effect": newest["effect"]})  # fmt: skip
    return page(
        request, "rule.html", status=status, rule=shown, newest=newest, me=who.principal.person,
        require_approval=svc.rules.require_approval, **{"problem": None, "backtest": None, **context}, **_choices(),
    )  # fmt: skip


@router.post("/console/rules/{name}")
def edit_rule(
    request: Request,
    name: str,
    expression: str = Form(..., max_length=MAX_EXPRESSION),
    description: str = Form("", max_length=MAX_DESCRIPTION),
    effect: dict = Depends(_effect),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    try:
        svc.rules.edit(name, who.label, expression=expression, effect=effect, description=description,
                       person=who.principal.person)  # fmt: skip
    except SafeholdError as exc:
        if exc.status != 400:
            raise
        form = {"expression": expression, "description": description, "effect": effect}
        return _rule_page(request, svc, name, who, status=400, problem=_problem(exc), form=form)
    return back(f"/console/rules/{name}", "rule_saved")


@router.post("/console/rules/{name}/approve")
def approve_rule(
    name: str,
    version: int = Form(..., ge=1, le=999_999_999),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    svc.rules.approve(name, who.label, version, person=who.principal.person)
    return back(f"/console/rules/{name}", "rule_approved")


@router.post("/console/rules/{name}/status")
def rule_status(
    name: str,
    status: str = Form(..., max_length=16),
    version: int | None = Form(None, ge=1, le=999_999_999),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    svc.rules.set_status(name, status, who.label, version)
    return back(f"/console/rules/{name}", f"rule_{status}" if status in ("shadow", "live", "disabled") else "")


@router.post("/console/rules/{name}/backtest")
def backtest_rule(
    request: Request,
    name: str,
    days: int = Form(7, ge=1, le=365),
    version: int | None = Form(None, ge=1, le=999_999_999),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    result = svc.rules.backtest(name, days, version, limit=50)
    return _rule_page(request, svc, name, who, backtest=result)


@router.get("/console/rules/{name}/shadow")
def shadow_comparison(
    request: Request,
    name: str,
    days: int = Query(7, ge=1, le=365),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    return page(request, "rule_shadow.html", cmp=svc.rules.compare(name, days), rule=svc.rules.show(name))


# ------------------------------------------------------------------------------------------ named lists


@router.get("/console/named-lists")
def named_lists(
    request: Request,
    edit: str | None = Query(None, max_length=48),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    editing = svc.rules.get_list(edit) if edit else None
    return _lists_page(request, svc, who, editing=editing)


def _lists_page(request: Request, svc: Services, who: Staff, status: int = 200, **context) -> Response:
    lists, readers = svc.rules.lists(), svc.rules.readers()
    for item in lists:
        item["read_by"] = readers.get(item["name"], [])
    return page(
        request, "rule_lists.html", status=status, lists=lists, kinds=LIST_KINDS, me=who.principal.person,
        max_items=MAX_LIST_ITEMS, **{"editing": None, "problem": None, **context},
    )  # fmt: skip


@router.post("/console/named-lists")
def save_list(
    request: Request,
    name: str = Form(..., max_length=48),
    kind: str = Form(..., max_length=16),
    items: str = Form("", max_length=MAX_LIST_TEXT),
    who: Staff = Depends(ADMIN),
    svc: Services = Depends(services),
) -> Response:
    values = [line.strip() for line in items.splitlines() if line.strip()]
    try:
        out = svc.rules.put_list(name, kind, values, who.label, person=who.principal.person)
    except SafeholdError as exc:
        if exc.status != 400:
            raise
        editing = {"name": name, "kind": kind, "values": values, "pending_values": [], "pending": None}
        return _lists_page(request, svc, who, status=400, editing=editing, problem=_problem(exc))
    return back("/console/named-lists", "list_pending" if out["pending"] else "list_saved")


@router.post("/console/named-lists/{name}/approve")
def approve_list(name: str, who: Staff = Depends(ADMIN), svc: Services = Depends(services)) -> Response:
    svc.rules.approve_list(name, who.label, person=who.principal.person)
    return back("/console/named-lists", "list_approved")
