"""Age signals and bands (``/v1/accounts/…``) and age-assurance callbacks (``/v1/age-assurance/…``).

The platform (or staff) records what it knows of an account's age with ``ages.write`` and reads the resolved band
with ``ages.read`` (:mod:`safehold.safety.ages`). A ``reviewer`` finding needs a caller who may review cases
(``cases.review``): a platform key cannot claim to be a reviewer. ``chat`` signals come only from Safehold's own
conversation door. An age-assurance provider's callback carries no API key: it is authenticated by the provider's
own signature (:mod:`safehold.safety.assurance`), and a bad or missing one is 401 ``age_assurance.bad_signature``.

``source: assurance`` sent with an API key is recorded as ``platform`` (method, provider and reference kept): only
a signed callback proves a result came from the provider, and an ``assurance`` result outranks a child's declared
age, so a platform key (or anyone holding one) must not be able to switch a child's protections off with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from safehold.agebands import BANDS
from safehold.api.contract import ContractRoute, OneOf, body_schema, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows
from safehold.errors import SafeholdError
from safehold.http.params import Offset
from safehold.safety.ages import MAX_ID, MAX_LIMIT
from safehold.safety.assurance import AssuranceResult
from safehold.services import Services

router = APIRouter(tags=["ages"], route_class=ContractRoute)
READ = require(Permission.AGES_READ)
WRITE = require(Permission.AGES_WRITE)

#: The platform's account id; it may hold '/' (``tenant/123``): the path parameter takes the rest of the path.
AccountId = Annotated[str, Path(min_length=1, max_length=MAX_ID, description="The platform's account id.")]
ProviderName = Annotated[
    matching(r"^[a-z][a-z0-9_-]{0,63}$", "a provider name is lower-case letters, digits, '_' and '-'"),
    Path(description="The provider's name in SAFEHOLD_AGE_ASSURANCE."),
]


class SignalBody(OneOf):
    """One age signal: exactly one of a birth date, an age or a band."""

    one_of = ("birth_date", "age", "band")
    source: Literal["declared", "assurance", "platform", "reviewer"] = Field(
        description="declared: the holder's own birth date; assurance: a provider's result; platform: the "
        "platform's own knowledge (assurance sent here is recorded as platform: a provider's result counts as "
        "assurance only through its signed callback); reviewer: a staff finding (needs cases.review). chat is "
        "Safehold's own."
    )
    birth_date: dt.date = Field(None, description="YYYY-MM-DD, not in the future.")
    age: float = Field(None, ge=0, le=130, description="Years (an estimate may be fractional).")
    band: Literal["under13", "13-15", "16-17", "adult", "unknown"] = None
    confidence: float = Field(1.0, ge=0.0, le=1.0, description="How sure the source is, 0 to 1.")
    method: str | None = Field(
        None, min_length=1, max_length=32, description="How it is known: estimation, verification, document, …"
    )
    provider: str | None = Field(None, min_length=1, max_length=64, description="Who says so (a provider).")
    reference: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Its reference: a repeated reference is a retry, not kept twice.",
    )


@router.post(
    "/v1/accounts/{account_id:path}/age-signals",
    status_code=201,
    summary="Record an age signal for an account; answers the signal and the account's resolved band",
    description="201 with the new signal; 200 when its `reference` was already recorded (a retry). A `reviewer` "
    "signal needs `cases.review` (403 `age.reviewer_only`). `source: assurance` is recorded as `platform`: a "
    "provider's result counts as assurance only through its signed callback.",
)
def record_signal(
    account_id: AccountId,
    body: SignalBody,
    response: Response,
    svc: Services = Depends(services),
    who: Principal = Depends(WRITE),
) -> dict:
    if body.source == "reviewer" and not allows(who.role, Permission.CASES_REVIEW):
        raise SafeholdError(
            "age.reviewer_only", "Only a staff member who may review cases (cases.review) records a reviewer finding.",
            status=403,
        )  # fmt: skip
    source = "platform" if body.source == "assurance" else body.source  # see the module doc
    out = svc.ages.add(
        who.label,
        account_id,
        source,
        **{k: getattr(body, k) for k in body.model_fields_set & set(SignalBody.one_of)},
        confidence=body.confidence,
        method=body.method,
        provider=body.provider,
        reference=body.reference,
    )
    if out["duplicate"]:
        response.status_code = 200
    return out


@router.get(
    "/v1/accounts/ages",
    summary="Accounts with a resolved band, most recently resolved first",
)
def list_ages(
    band: Literal[BANDS] | None = Query(None, description="Only accounts in this band."),  # type: ignore[valid-type]
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: Offset = 0,
    svc: Services = Depends(services),
    _: Principal = Depends(READ),
) -> dict:
    return svc.ages.list(band=band, limit=limit, offset=offset)


@router.get(
    "/v1/accounts/{account_id:path}/age",
    summary="An account's resolved band, the rule and signal that decided, and all its signals",
)
def get_age(account_id: AccountId, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    return svc.ages.show(account_id)


@router.post(
    "/v1/age-assurance/{provider}/callback",
    summary="An age-assurance provider's result (authenticated by the provider's signature, not an API key)",
    description="For the built-in `signed_webhook` type: header `Safehold-Signature: t=<unix>,v1=<hex "
    'HMAC-SHA256(secret, "<t>." + body)>` over a JSON body `{account_id, age | band, method, confidence?, '
    'reference}` (docs/safety.md, "Age-assurance providers"). 401 `age_assurance.bad_signature` or '
    "`age_assurance.expired`; 404 `age_assurance.unknown_provider`.",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": body_schema(AssuranceResult)}}}
    },
)
async def assurance_callback(provider: ProviderName, request: Request, svc: Services = Depends(services)) -> dict:
    body = await request.body()
    return await run_in_threadpool(svc.assurance.callback, provider, request.headers, body)
