"""Conversations (``/v1/conversations``): stream a conversation's messages for grooming and sextortion scoring.

The platform sends messages with ``events.write``; reviewers read the stored assessments with ``cases.read``
(see :mod:`safehold.rules.conversations` and docs/text-safety.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query

from safehold.api.contract import ContractRoute, body_schema, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.params import Offset
from safehold.rules.conversations import MAX_ID, MAX_LIMIT, MessagesIn, OneMessageIn
from safehold.services import Services

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], route_class=ContractRoute)
READ = Depends(require(Permission.CASES_READ))
WRITE = require(Permission.EVENTS_WRITE)

#: A new message's conversation id in the path: 1 to 128 printable ASCII characters, not all blank (``check_id``'s
#: rule, which also takes other printable characters; a path takes no '/', and no '%': a client that forgets to
#: escape it as %25 would send another id than it meant, and the server could not tell).
ConversationId = Annotated[
    matching(
        r"^[ -$&-.0-~]*[!-$&-.0-~][ -$&-.0-~]*$", "a conversation id is printable ASCII without '/' or '%', not blank"
    ),
    Path(max_length=MAX_ID, description="The platform's id."),
]
_MESSAGES_BODY = {
    "required": True,
    "content": {"application/json": {"schema": body_schema(MessagesIn | OneMessageIn)}},
}


@router.post(
    "/{conversation_id}/messages",
    summary="Score new messages of a conversation (idempotent by message id); an alert opens a case",
    description="Body: `{messages: [{id, author, text, sent_at?}, …] (1 to 100), participants?: {author: {age}}}`, "
    "or one message at the top level: `{id, author, text, sent_at?, participants?}`.",
    openapi_extra={"requestBody": _MESSAGES_BODY},
)
def add_messages(
    conversation_id: ConversationId,
    body: dict = Body(...),
    svc: Services = Depends(services),
    who: Principal = Depends(WRITE),
) -> dict:
    return svc.conversations.add_messages(who.label, conversation_id, body)


@router.get("", summary="Stored conversations, highest risk first")
def list_conversations(
    min_score: float = Query(0.0, ge=0.0, le=1.0),
    alert: bool | None = Query(None, description="Only conversations that alert (true) or do not (false)."),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    return {"conversations": svc.conversations.list(min_score=min_score, alert=alert, limit=limit, offset=offset)}


@router.get("/{conversation_id}", summary="One conversation: score, case and the assessment with its evidence")
def get_conversation(conversation_id: str, svc: Services = Depends(services), _=READ) -> dict:
    return svc.conversations.get(conversation_id)


@router.delete("/{conversation_id}", summary="Forget a conversation's state and message ids (its case stays)")
def forget(conversation_id: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.conversations.forget(conversation_id, who.label)
