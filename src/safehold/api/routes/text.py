"""Text safety over HTTP: check a post, profile, listing, comment or message for soliciting abuse material or
access to children (Principle 4); a case opens when it warrants one (see :mod:`safehold.rules.posts`).

The handler is a plain ``def``: a check may match links against the URL banks and record a case, so it runs in
the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.pipeline.events import IDEMPOTENCY_HEADER_PATTERN
from safehold.rules.posts import PostIn
from safehold.services import Services

router = APIRouter(prefix="/v1/text", tags=["text"], route_class=ContractRoute)


@router.post("/check", summary="Check a post, profile, listing, comment or message; opens a case when warranted")
def check_text(
    body: PostIn,
    idempotency_key: str = Header(
        None,
        description="Makes a retry safe (optional); the same as the body's idempotency_key if both are sent.",
        json_schema_extra={"pattern": IDEMPOTENCY_HEADER_PATTERN},
    ),
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.EVENTS_WRITE)),
) -> dict:
    """The solicitation score with its explanation, the links that matched a URL bank, and the case opened or
    updated (``null`` when the text stayed below the threshold and no link matched: then nothing is stored)."""
    return svc.posts.check(who, body, idempotency_key=idempotency_key)
