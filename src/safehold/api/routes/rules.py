"""Operator rules (``/v1/rules``): CEL rules with versions and diffs, second-admin approval, shadow mode, backtests,
and the named lists they read (docs/rules.md). Admins only (``rules.manage``): a rule decides what opens cases and
what the platform is told to do.

Every change is applied to this process's rule set before the answer and to every other process's within one
upkeep interval (see :mod:`safehold.rules.book`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.actions.webhooks import ACTION_KINDS
from safehold.api.contract import ContractRoute, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.cases.taxonomy import QUEUES
from safehold.rules.book import LIST_KINDS, MAX_DESCRIPTION
from safehold.rules.engine import MAX_EXPRESSION, MAX_LIST_ITEMS, NAME_PATTERN, PRIORITIES
from safehold.services import Services

router = APIRouter(prefix="/v1/rules", tags=["rules"], route_class=ContractRoute)
ADMIN = require(Permission.RULES_MANAGE)
RuleName = Annotated[matching(NAME_PATTERN, "a rule name is 1 to 48 lower-case letters, digits, '_', '.', '-'"), Path()]
Version = Annotated[int | None, Query(ge=1, le=999_999_999)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Param = Annotated[str, Field(min_length=1, max_length=64)]


class OpenCase(_Strict):
    type: Literal["open_case"]
    priority: Literal[PRIORITIES]  # type: ignore[valid-type]
    category: Param | None = None


class AddLabel(_Strict):
    type: Literal["add_label"]
    label: Param


class Action(_Strict):
    type: Literal["action"]
    name: Literal[ACTION_KINDS]  # type: ignore[valid-type]


class RouteToQueue(_Strict):
    type: Literal["route_to_queue"]
    queue: Literal[QUEUES]  # type: ignore[valid-type]


class EscalateToReporting(_Strict):
    type: Literal["escalate_to_reporting"]


#: A rule's effect, stated whole in the schema (:data:`safehold.rules.engine.EFFECTS` checks the same again).
Effect = Annotated[OpenCase | AddLabel | Action | RouteToQueue | EscalateToReporting, Field(discriminator="type")]


def _effect(effect: BaseModel | None) -> dict | None:
    return None if effect is None else effect.model_dump(exclude_none=True)


class RuleIn(_Strict):
    name: str = Field(min_length=1, max_length=48, json_schema_extra={"pattern": NAME_PATTERN})
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION, description="A CEL expression (docs/rules.md).")
    effect: Effect
    description: str = Field("", max_length=MAX_DESCRIPTION)


class RuleEdit(_Strict):
    expression: str | None = Field(None, min_length=1, max_length=MAX_EXPRESSION)
    effect: Effect | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)


class StatusIn(_Strict):
    status: Literal["shadow", "live", "disabled"]
    version: int | None = Field(
        None,
        ge=1,
        le=999_999_999,
        description="Default: the newest version. On a live rule, shadow runs it beside the live version (which keeps "
        "acting) and live promotes it, ending the shadow.",
    )


class ApproveIn(_Strict):
    version: int | None = Field(None, ge=1, le=999_999_999, description="Default: the newest version.")


class BacktestIn(_Strict):
    days: int = Field(7, ge=1, le=365)
    version: int | None = Field(None, ge=1, le=999_999_999)
    limit: int = Field(100, ge=1, le=1000, description="Matched detections listed at most.")


class ListIn(_Strict):
    kind: Literal[LIST_KINDS]  # type: ignore[valid-type]
    items: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(max_length=MAX_LIST_ITEMS)


@router.get("", summary="Every rule: status, newest and active version, owner, expression and effect")
def list_rules(svc: Services = Depends(services), _=Depends(ADMIN)) -> dict:
    return {"rules": svc.rules.all_rules()}


@router.post("", summary="Write a new rule (version 1, a draft)", status_code=201)
def create(body: RuleIn, svc: Services = Depends(services), who: Principal = Depends(ADMIN)) -> dict:
    return svc.rules.create(
        body.name, body.expression, _effect(body.effect), who.label, description=body.description, person=who.person
    )


@router.get("/lists", summary="The named lists rules read with `in`")
def lists(svc: Services = Depends(services), _=Depends(ADMIN)) -> dict:
    return {"lists": svc.rules.lists()}


@router.put(
    "/lists/{name}",
    summary="Create or replace a named list (one a live rule reads: a pending change, until a second admin approves)",
)
async def put_list(name: RuleName, body: ListIn, svc: Services = Depends(services), who: Principal = Depends(ADMIN)):
    return await run_in_threadpool(
        lambda: svc.rules.put_list(name, body.kind, body.items, who.label, person=who.person)
    )


@router.post(
    "/lists/{name}/approve", summary="Approve a named list's pending change (by an admin other than its author)"
)
def approve_list(name: RuleName, svc: Services = Depends(services), who: Principal = Depends(ADMIN)) -> dict:
    out = svc.rules.approve_list(name, who.label, person=who.person)
    return {k: v for k, v in out.items() if k not in ("values", "pending_values")}


@router.get("/{name}", summary="A rule and every version of it, with diffs and approvals")
def show(name: RuleName, svc: Services = Depends(services), _=Depends(ADMIN)) -> dict:
    return svc.rules.show(name)


@router.patch("/{name}", summary="Edit a rule: a new version with its diff (a live version keeps running)")
def edit(name: RuleName, body: RuleEdit, svc: Services = Depends(services), who: Principal = Depends(ADMIN)) -> dict:
    return svc.rules.edit(
        name,
        who.label,
        expression=body.expression,
        effect=_effect(body.effect),
        description=body.description,
        person=who.person,
    )


@router.delete("/{name}", summary="Delete a rule and its versions")
def delete(name: RuleName, svc: Services = Depends(services), who: Principal = Depends(ADMIN)) -> dict:
    return svc.rules.delete(name, who.label)


@router.get("/{name}/diff", summary="The diff between two versions (default: the newest and the one before)")
def diff(
    name: RuleName, a: Version = None, b: Version = None, svc: Services = Depends(services), _=Depends(ADMIN)
) -> dict:
    return svc.rules.diff(name, a, b)


@router.post("/{name}/approve", summary="Approve a version (by an admin other than its author)")
def approve(
    name: RuleName, body: ApproveIn, svc: Services = Depends(services), who: Principal = Depends(ADMIN)
) -> dict:
    return svc.rules.approve(name, who.label, body.version, person=who.person)


@router.post("/{name}/status", summary="Run a version in shadow or live, or disable the rule")
def status(name: RuleName, body: StatusIn, svc: Services = Depends(services), who: Principal = Depends(ADMIN)) -> dict:
    return svc.rules.set_status(name, body.status, who.label, body.version)


@router.get("/{name}/shadow", summary="What the rule in shadow would have done, and what the live rules did")
def shadow_hits(
    name: RuleName,
    limit: int = Query(100, ge=1, le=1000),
    svc: Services = Depends(services),
    _=Depends(ADMIN),
) -> dict:
    return svc.rules.shadow_hits(name, limit)


@router.post("/{name}/backtest", summary="Run a version over the detections of the last N days")
async def backtest(name: RuleName, body: BacktestIn, svc: Services = Depends(services), _=Depends(ADMIN)) -> dict:
    return await run_in_threadpool(svc.rules.backtest, name, body.days, body.version, body.limit)
