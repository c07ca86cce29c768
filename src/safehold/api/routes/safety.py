"""Contact policy (Principle 7): ``POST /v1/interactions/check`` before the platform delivers a message, a friend
request, a follow, a call or media, or suggests an account; ``/v1/safety/contact-policy`` to read and change the
operator's policy (docs/safety.md#contact-policy).

The check is ``async`` and answers from memory when policy, bands and risk are all fresh in this process's caches
(:mod:`safehold.safety.contact_service`); otherwise — a cache miss, a policy or risk refresh due — it runs in a
worker thread, so database work never blocks the event loop. Ordinary checks are answered before FastAPI by
:mod:`safehold.api.hotpath` with the same :func:`answer_check`; this route handles the rest and documents the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute, body_schema
from safehold.api.deps import require, services
from safehold.api.routes.scan import json_body
from safehold.api.routes.search import Locale
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.safety.contact import KINDS, OUTCOMES, Policy
from safehold.services import Services

router = APIRouter(tags=["safety"], route_class=ContractRoute)
CHECK = require(Permission.SAFETY_CHECK)
READ = require(Permission.STATS_READ)
MANAGE = require(Permission.SETTINGS_MANAGE)
POLICY = "/v1/safety/contact-policy"
AccountId = Field(min_length=1, max_length=128, description="The platform's account id.")


class RelationshipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mutual_contacts: int = Field(0, ge=0, le=1_000_000, description="Contacts the two accounts share.")
    prior_conversation: bool = Field(False, description="They have exchanged messages before.")
    recipient_follows_sender: bool = Field(False, description="The recipient follows (or befriended) the sender.")


class InteractionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender: str = AccountId
    recipient: str = AccountId
    kind: Literal[KINDS] = Field(description="discover: may the recipient be suggested to or found by the sender.")  # type: ignore[valid-type]
    relationship: RelationshipIn | None = Field(None, description="Omitted: strangers.")
    sender_created_at: dt.datetime | None = Field(None, description="When the sender's account was made (UTC).")
    locale: str = Locale


class InteractionOut(BaseModel):
    decision: Literal[OUTCOMES]  # type: ignore[valid-type]
    reason: str
    rule: str | None = Field(description="The rule that decided; null when none applied (the fallback).")
    prompt: str | None = Field(description="The prompt key to show, e.g. contact.friction.stranger.")
    relaxed: bool = Field(description="The rule's outcome was relaxed one step because the pair is connected.")
    sender_band: str = Field(description="The sender's band as a sender (the oldest credible band).")
    recipient_band: str = Field(description="The recipient's protective band (the youngest credible band).")
    sender_age_conflict: bool = Field(
        description="The sender claims to be younger than an adult signal says (a grooming red flag)."
    )
    policy_version: int = Field(description="0: the built-in default policy.")
    prompt_text: dict[str, Any] | None = Field(None, description="The prompt's text in the locale, when known.")


async def answer_check(svc: Services, body: InteractionBody) -> dict:
    """The check, on the event loop when it is answered from memory, else in a worker thread."""
    if svc.contact.in_memory(body.sender, body.recipient):
        return _check(svc, body)
    return await run_in_threadpool(_check, svc, body)


def _check(svc: Services, body: InteractionBody) -> dict:
    rel = body.relationship or RelationshipIn()
    return svc.contact.check(
        body.sender,
        body.recipient,
        body.kind,
        mutual_contacts=rel.mutual_contacts,
        prior_conversation=rel.prior_conversation,
        recipient_follows_sender=rel.recipient_follows_sender,
        sender_created_at=body.sender_created_at,
        locale=body.locale,
    )


@router.post(
    "/v1/interactions/check", response_model=InteractionOut, response_model_exclude_unset=True, summary="Check contact"
)
async def check(body: InteractionBody, svc: Services = Depends(services), _: Principal = Depends(CHECK)) -> dict:
    """``allow``, ``friction`` (deliver, with the safety prompt named by ``prompt``) or ``block``, from the
    operator's contact policy over the two accounts' age bands, their relationship, the sender's account age and
    the sender's open grooming and user-report cases."""
    return await answer_check(svc, body)


@router.get(POLICY, summary="The active contact policy")
def show_policy(svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    """The policy every check uses now: its version (0: the built-in default), author, time, rules; and the
    saved versions, newest first."""
    return {**svc.contact.show(), "history": svc.contact.history()}


#: The policy's schema, published; the route reads the body itself so that its problems are one
#: ``contact.invalid_policy``: every structural one at once, those between fields (a friction without a prompt, two
#: rules of one name) once the fields they involve are valid (``safehold.safety.contact_service.parse_policy``).
POLICY_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema(Policy)}}}}


@router.put(POLICY, summary="Save a new contact policy and make it active", openapi_extra=POLICY_BODY)
async def put_policy(request: Request, svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    """Validated (422 ``contact.invalid_policy``, its problems in ``detail.errors``: every structural one; those
    between fields once the fields are valid), saved as a new version,
    audited, used by this process at once and by every other within ``SAFEHOLD_CONTACT_POLICY_TTL`` seconds."""
    body = await json_body(request)
    return await run_in_threadpool(svc.contact.save, body, who.label)


@router.post(f"{POLICY}/validate", summary="Validate a contact policy without saving it", openapi_extra=POLICY_BODY)
async def validate_policy(request: Request, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    parsed = svc.contact.validate(await json_body(request))
    return {"valid": True, "rules": len(parsed.rules)}


@router.post(f"{POLICY}/reset", summary="Make the built-in default the active contact policy")
def reset_policy(svc: Services = Depends(services), who: Principal = Depends(MANAGE)) -> dict:
    """Saves the default as a new version (the history keeps the previous ones)."""
    return svc.contact.reset(who.label)
