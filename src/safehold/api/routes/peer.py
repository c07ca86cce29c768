"""The peer exchange (Principle 10): what another Safehold instance of a sharing consortium calls.

Every route but the feedback listing is for a ``peer`` key (permission ``sharing.peer``, see
:mod:`safehold.sharing.peers`); the listing is for this instance's own staff (``banks.read``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from safehold.api.contract import ContractRoute, SignalTypeName, matching
from safehold.api.deps import require, services
from safehold.api.routes.banks import BankName, Category
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.params import AfterId, BodyId, QueryId
from safehold.services import Services
from safehold.sharing import peer_protocol as proto
from safehold.sharing.peers import MAX_FEEDBACK_PAGE

router = APIRouter(prefix="/v1/peer", tags=["peer"], route_class=ContractRoute)

PEER = require(Permission.SHARING_PEER)
Cursor = matching(proto.CURSOR_PATTERN, "a feed cursor is a page's `next`, as it was given")
#: A hash value as a peer sends it: bounded here, checked against its signal type by the service.
HashValue = Annotated[str, Field(min_length=1, max_length=4096)]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_id: BodyId | None = Field(None, description="Our entry's id (a feed entry's `id`).")
    signal_type: SignalTypeName | None = Field(None, description="With `value`: the entry by its hash instead.")
    value: HashValue | None = None
    verdict: Literal["true_positive", "false_positive"]
    reason: str | None = Field(None, max_length=200)
    category: str | None = Category


class ContributedHash(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(max_length=128, description="The contributor's own id of the entry.")
    signal_type: SignalTypeName
    value: HashValue
    category: str | None = Category


class Contribution(BaseModel):
    """The signed part: every key present (``null`` when empty), as the contributor signed it."""

    model_config = ConfigDict(extra="forbid")

    peer: str = Field(min_length=1, max_length=64, description="The contributor's peer name here.")
    at: str = Field(min_length=1, max_length=40, description="When it was signed (ISO 8601).")
    entries: list[ContributedHash] = Field(min_length=1, max_length=proto.MAX_CONTRIBUTION)


class ContributionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contribution: Contribution
    signature: str = Field(min_length=1, max_length=128, description="Ed25519, base64, by the contributor's key.")


@router.get("/key", summary="This instance's peer public key (pin it) and your peer name here")
def key(svc: Services = Depends(services), who: Principal = Depends(PEER)) -> dict:
    return {"public_key": svc.peers.public_key(), "peer": svc.peers.caller(who).name}


@router.get("/banks", summary="The banks shared with the calling peer")
def banks(svc: Services = Depends(services), who: Principal = Depends(PEER)) -> list[dict]:
    return svc.peers.shared_banks(svc.peers.caller(who))


@router.get("/feed", summary="One signed page of a shared bank's additions and withdrawals after a cursor")
def feed(
    bank: Annotated[BankName, Query(description="A bank shared with you.")],
    after: Annotated[Cursor | None, Query(description="The previous page's `next` (none: from the start).")] = None,
    limit: Annotated[int, Query(ge=1, le=proto.MAX_PAGE)] = 500,
    svc: Services = Depends(services),
    who: Principal = Depends(PEER),
) -> dict:
    return svc.peers.feed(svc.peers.caller(who), bank, after, limit)


@router.post("/feedback", summary="Your opinion on one of our entries (true or false positive)")
def send_feedback(body: FeedbackIn, svc: Services = Depends(services), who: Principal = Depends(PEER)) -> dict:
    return svc.peers.record_feedback(
        svc.peers.caller(who),
        entry_id=body.entry_id,
        signal_type=body.signal_type,
        value=body.value,
        verdict=body.verdict,
        reason=body.reason,
        category=body.category,
    )


@router.get("/feedback", summary="Peers' feedback on our entries (for this instance's staff)")
def list_feedback(
    entry_id: QueryId = None,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FEEDBACK_PAGE)] = 100,
    svc: Services = Depends(services),
    _: Principal = Depends(require(Permission.BANKS_READ)),
) -> list[dict]:
    return svc.peers.feedback(entry_id=entry_id, after_id=after_id, limit=limit)


@router.post("/contributions", summary="Contribute confirmed hashes (signed; they land disabled, for review)")
def contribute(body: ContributionIn, svc: Services = Depends(services), who: Principal = Depends(PEER)) -> dict:
    doc = body.contribution.model_dump(mode="json")
    return svc.peers.contribute(svc.peers.caller(who), doc, body.signature)
