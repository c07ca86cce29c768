"""Policies, webhooks and deliveries (admins), and manual actions on a case (senior reviewers)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from safehold.actions.webhooks import ACTION_KINDS, DELIVERY_STATUSES, NAME_PATTERN, NOTICE_EVENTS
from safehold.api.contract import ContractRoute, HttpUrl, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.cases.taxonomy import CLASSIFICATIONS, CSE_KINDS
from safehold.http.params import AfterId, Id, QueryId
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["actions"], route_class=ContractRoute)

MANAGE = require(Permission.ACTIONS_MANAGE)
ActionKind = Literal[ACTION_KINDS]
#: What a webhook may subscribe to: the action kinds and the notices (a user report's or an appeal's outcome).
WebhookEvent = Literal[ACTION_KINDS + NOTICE_EVENTS]
Name = matching(NAME_PATTERN, "a name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
Url = Annotated[HttpUrl, Field(max_length=2000)]


class _Strict(BaseModel):
    """A part of a policy: the service refuses keys it does not know, so the schema does too. A key is left out
    rather than sent as ``null`` (the ``None`` defaults mean "not given")."""

    model_config = ConfigDict(extra="forbid")


class ActionSpec(_Strict):
    kind: ActionKind
    params: dict = Field(default_factory=dict)


#: An action of a policy: a kind, or a kind with parameters.
ActionItem = ActionKind | ActionSpec
#: A policy's actions: each kind at most once (``uniqueItems`` says so of plain kinds; a kind given both ways is
#: the service's ``policy.duplicate_action``).
Actions = Annotated[
    list[ActionItem], Field(min_length=1, max_length=len(ACTION_KINDS), json_schema_extra={"uniqueItems": True})
]


class CsamMatch(_Strict):
    decision: Literal["csam"]
    classification: list[Literal[CLASSIFICATIONS]] = Field(None, min_length=1)


class CseMatch(_Strict):
    decision: Literal["cse"]
    classification: list[Literal[CSE_KINDS]] = Field(None, min_length=1)


class NotViolatingMatch(_Strict):
    decision: Literal["not_violating"]


class AutoMatch(_Strict):
    """What an automatic detection must have; every key left out matches anything."""

    source: str = Field(None, min_length=1)
    bank: str = Field(None, min_length=1)
    category: list[Annotated[str, Field(min_length=1)]] = Field(None, min_length=1)
    min_confidence: float = Field(None, ge=0, le=1)


#: A decision policy's match: the decision, and for a finding the classifications it covers.
DecisionMatch = Annotated[CsamMatch | CseMatch | NotViolatingMatch, Field(discriminator="decision")]


class _Policy(BaseModel):
    name: Name
    actions: Actions
    enabled: bool = True


class DecisionPolicy(_Policy):
    trigger: Literal["decision"]
    match: DecisionMatch


class AutoPolicy(_Policy):
    trigger: Literal["auto"]
    match: AutoMatch = Field(default_factory=AutoMatch)


PolicyCreate = Annotated[DecisionPolicy | AutoPolicy, Field(discriminator="trigger")]


class PolicyUpdate(BaseModel):
    match: CsamMatch | CseMatch | NotViolatingMatch | AutoMatch | None = Field(
        None, description="The kind of match of the policy's trigger (a decision, or an automatic detection)."
    )
    actions: Actions | None = None
    enabled: bool | None = None


class WebhookCreate(BaseModel):
    name: Name
    url: Url
    events: list[WebhookEvent] = Field(
        default_factory=list, description="Action kinds to receive; empty: all but internal."
    )


class WebhookUpdate(BaseModel):
    url: Url | None = None
    events: list[WebhookEvent] | None = None
    enabled: bool | None = None


class ActionCreate(BaseModel):
    kind: ActionKind
    params: dict = Field(default_factory=dict)


def _match(match: BaseModel | None) -> dict | None:
    """A policy's match as the service takes it: only the keys the caller sent."""
    return None if match is None else match.model_dump(exclude_unset=True)


def _actions(actions: list[ActionItem] | None) -> list | None:
    return None if actions is None else [a if isinstance(a, str) else a.model_dump() for a in actions]


# --------------------------------------------------------------------------- policies


@router.get("/policies", summary="List policies")
def list_policies(svc: Services = Depends(services), _=Depends(MANAGE)) -> list[dict]:
    return svc.actions.list_policies()


@router.post("/policies", status_code=201, summary="Create a policy")
def create_policy(body: PolicyCreate, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.actions.create_policy(
        body.name, body.trigger, _match(body.match), _actions(body.actions), enabled=body.enabled, actor=who.label
    )


@router.get("/policies/{name}", summary="One policy")
def get_policy(name: str, svc: Services = Depends(services), _=Depends(MANAGE)) -> dict:
    return svc.actions.get_policy(name)


@router.patch("/policies/{name}", summary="Change a policy's match, actions or enabled flag")
def update_policy(
    name: str, body: PolicyUpdate, svc: Services = Depends(services), who: Principal = Depends(MANAGE)
) -> dict:
    return svc.actions.update_policy(
        name, match=_match(body.match), actions=_actions(body.actions), enabled=body.enabled, actor=who.label
    )


@router.delete("/policies/{name}", summary="Delete a policy (actions it took stay on their cases)")
def delete_policy(name: str, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.actions.delete_policy(name, actor=who.label)


# --------------------------------------------------------------------------- webhooks


@router.get("/webhooks", summary="List webhook receivers (never their secrets)")
def list_webhooks(svc: Services = Depends(services), _=Depends(MANAGE)) -> list[dict]:
    return svc.webhooks.list()


@router.post("/webhooks", status_code=201, summary="Add a receiver; the response holds its secret, shown only once")
def create_webhook(body: WebhookCreate, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    hook, secret = svc.webhooks.create(body.name, body.url, events=body.events, actor=who.label)
    return {**hook, "secret": secret}


@router.get("/webhooks/{name}", summary="One receiver")
def get_webhook(name: str, svc: Services = Depends(services), _=Depends(MANAGE)) -> dict:
    return svc.webhooks.get(name)


@router.patch("/webhooks/{name}", summary="Change a receiver's URL, subscriptions or enabled flag")
def update_webhook(
    name: str, body: WebhookUpdate, svc: Services = Depends(services), who: Principal = Depends(MANAGE)
) -> dict:
    return svc.webhooks.update(name, url=body.url, events=body.events, enabled=body.enabled, actor=who.label)


@router.delete("/webhooks/{name}", summary="Delete a receiver and its delivery history")
def delete_webhook(name: str, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.webhooks.delete(name, actor=who.label)


@router.post("/webhooks/{name}/rotate-secret", summary="Replace the signing secret; the new one is shown only once")
def rotate_secret(name: str, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return {"name": name, "secret": svc.webhooks.rotate_secret(name, actor=who.label)}


@router.post("/webhooks/{name}/test", status_code=202, summary="Queue a signed ping to this receiver")
def test_webhook(name: str, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.webhooks.test(name, actor=who.label)


# ------------------------------------------------------------------------- deliveries


@router.get("/deliveries", summary="Deliveries in id order; status=dead is the dead-letter list")
def list_deliveries(
    status: Literal[DELIVERY_STATUSES] | None = Query(None, description="pending, delivered or dead"),
    webhook: str | None = None,
    case_id: QueryId = None,
    after_id: AfterId = 0,
    limit: int = Query(100, ge=1, le=1000),
    svc: Services = Depends(services),
    _=Depends(MANAGE),
) -> dict:
    rows = svc.webhooks.deliveries(status=status, webhook=webhook, case_id=case_id, limit=limit, after_id=after_id)
    return {"deliveries": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None}


@router.post("/deliveries/{delivery_id}/retry", summary="Send a dead or waiting delivery again now")
def retry_delivery(delivery_id: Id, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    return svc.webhooks.retry(delivery_id, actor=who.label)


# ------------------------------------------------------------------------ manual action


@router.post("/cases/{case_id}/actions", status_code=201, summary="Take an action on a case by hand")
def take_action(
    case_id: Id,
    body: ActionCreate,
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.CASES_SENIOR)),
) -> dict:
    return svc.actions.take(case_id, body.kind, who.label, params=body.params)
