"""Search and autocomplete guard (Principle 6): check a query before running it, filter suggestions before
showing them, report clicks on help resources. Nothing about the query or the caller is stored; only aggregate
counters (``GET /v1/stats/search``).

The handlers are ``async``: a check is a few microseconds of CPU and no I/O, cheaper than the thread-pool hop a
sync handler costs, and it sits in front of every search box keystroke. The ordinary requests to the two hot
routes are answered before FastAPI by :mod:`safehold.api.hotpath`, with the same ``answer_*`` functions as below.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.rules.search import CATEGORIES
from safehold.services import Services
from safehold.text.search import ACTIONS

router = APIRouter(prefix="/v1/search", tags=["search"], route_class=ContractRoute)
CHECK = require(Permission.SCAN)
MAX_QUERY = 1000
LOCALE_PATTERN = r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"
Locale = Field(
    "en",
    max_length=35,
    pattern=LOCALE_PATTERN,
    description="The searcher's locale (BCP 47), e.g. en, pt-BR; unknown ones fall back to English.",
)


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=MAX_QUERY)
    locale: str = Locale
    bucket: str | None = Field(None, max_length=128, description="A stable, non-identifying key (e.g. a hash of "
                               "the session id) so a searcher always sees the same message variant.")  # fmt: skip


class FilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suggestions: list[Annotated[str, Field(max_length=MAX_QUERY)]] = Field(max_length=100)
    locale: str = Locale


class HelpClickBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Literal[CATEGORIES] = Field(description="The decision's category.")
    variant: str | None = Field(
        None, max_length=32, description="The decision's message variant, e.g. deterrence, help; none for support."
    )
    locale: str = Locale


class HelpOut(BaseModel):
    name: str
    url: str
    phone: str | None = None
    description: str


class MessageOut(BaseModel):
    title: str
    body: str
    help: list[HelpOut]


class DecisionOut(BaseModel):
    """What to do with a query. ``support``: the searcher is a person at risk asking for help (a child asked
    for images, a sextortion victim, someone whose images were shared): show the help resources, never a
    deterrence message."""

    action: Literal[ACTIONS]  # type: ignore[valid-type]
    category: str | None
    severity: int
    locale: str
    variant: str | None
    message: MessageOut | None


def answer_check(svc: Services, body: CheckBody) -> dict:
    return svc.search.check(body.query, body.locale, body.bucket)


def answer_filter(svc: Services, body: FilterBody) -> dict:
    kept, removed = svc.search.filter_suggestions(body.suggestions, body.locale)
    return {"suggestions": kept, "removed": removed}


@router.post("/check", response_model=DecisionOut, response_model_exclude_none=False)
async def check(body: CheckBody, svc: Services = Depends(services), _: Principal = Depends(CHECK)) -> dict:
    """``allow``, ``support``, ``warn`` or ``block``, with the category matched and, unless allowed, the localised
    message and help resources: for block, shown instead of the results; for warn, above them; for support, help
    resources for a person at risk (Take It Down, CyberTipline, Childline, local helplines), never deterrence."""
    return answer_check(svc, body)


@router.post("/suggestions/filter")
async def filter_suggestions(
    body: FilterBody, svc: Services = Depends(services), _: Principal = Depends(CHECK)
) -> dict:
    """The suggestions that are safe to show, in their order, and how many were removed per category."""
    return answer_filter(svc, body)


@router.post("/help-clicks")
async def help_click(body: HelpClickBody, svc: Services = Depends(services), _: Principal = Depends(CHECK)) -> dict:
    """Count one click on a help resource shown with a decision (for comparing message variants and seeing whether
    support answers are used). Send the decision's ``category`` and ``variant`` (none for ``support``) and the
    searcher's locale; nothing else is recorded."""
    return svc.search.help_click(body.category, body.variant, body.locale)
