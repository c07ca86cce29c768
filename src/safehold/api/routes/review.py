"""Review over the API: decisions, the second reviewer's confirmation, safe previews, reveals and wellness.

Media answers are never cached (``Cache-Control: no-store``) and are sandboxed: a stored file that is really an
HTML or SVG document cannot run script if someone opens its URL directly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from safehold.api.contract import ContractRoute, whole_number
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.cases.taxonomy import CLASSIFICATIONS, CSE_KINDS
from safehold.http.params import BodyId, Id
from safehold.review.wellness import LIMITS
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["review"], route_class=ContractRoute)
READ = require(Permission.CASES_READ)
REVIEW = require(Permission.CASES_REVIEW)
MEDIA_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Disposition": "inline",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


class _Decision(BaseModel):
    note: str | None = Field(None, max_length=10_000)


class CsamDecision(_Decision):
    decision: Literal["csam"]
    classification: Literal[CLASSIFICATIONS] = Field(description="The material's category.")


class CseDecision(_Decision):
    decision: Literal["cse"]
    classification: Literal[CSE_KINDS] = Field(description="The kind of exploitation.")


class PlainDecision(_Decision):
    decision: Literal["not_violating", "escalate"]
    classification: None = Field(None, description="None: only a finding is classified.")


#: A decision, with the classification a finding needs (``check_decision``'s rule, in the schema).
DecisionBody = Annotated[CsamDecision | CseDecision | PlainDecision, Field(discriminator="decision")]


class ConfirmationBody(BaseModel):
    agree: bool
    note: str | None = Field(None, max_length=10_000)


class BankBody(BaseModel):
    item_id: BodyId
    bank: str = Field(min_length=1, max_length=64)


#: The wellness limits, bounded as the service bounds them (``wellness.LIMITS``).
DailyCap, BreakEvery, BreakMinutes = (
    whole_number(*LIMITS[name]) for name in ("daily_cap", "break_every", "break_minutes")
)


class WellnessDefaults(BaseModel):
    """Only the settings given change (at least one); the others keep their value. A setting is left out, not
    sent as ``null``: the defaults below are "unchanged", not values."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    blur: StrictBool = None
    greyscale: StrictBool = None
    thumbnails_first: StrictBool = None
    video_muted: StrictBool = None
    video_autoplay: StrictBool = None
    daily_cap: DailyCap = None
    break_every: BreakEvery = None
    break_minutes: BreakMinutes = None

    @model_validator(mode="after")
    def _some(self) -> WellnessDefaults:
        if not self.model_fields_set:
            raise ValueError("give at least one setting to change")
        return self


def _media(data: bytes, content_type: str) -> Response:
    return Response(data, media_type=content_type, headers=MEDIA_HEADERS)


@router.post("/cases/{case_id}/decision", summary="Decide a claimed case (new findings wait for a second reviewer)")
def decide(
    case_id: Id, body: DecisionBody, svc: Services = Depends(services), who: Principal = Depends(REVIEW)
) -> dict:
    return svc.review.decide(case_id, who, body.decision, classification=body.classification, note=body.note)


@router.post("/cases/{case_id}/confirmation", summary="Agree or disagree with another reviewer's finding")
def confirm(
    case_id: Id, body: ConfirmationBody, svc: Services = Depends(services), who: Principal = Depends(REVIEW)
) -> dict:
    return svc.review.confirm(case_id, who, body.agree, note=body.note)


@router.post("/cases/{case_id}/bank", summary="Add a confirmed item's hashes to a block bank")
def add_to_bank(
    case_id: Id,
    body: BankBody,
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.BANKS_WRITE)),
) -> dict:
    return svc.review.add_to_bank(case_id, body.item_id, body.bank, who)


@router.get(
    "/items/{item_id}/preview",
    summary="A small blurred greyscale preview (not a reveal)",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
def preview(item_id: Id, svc: Services = Depends(services), who: Principal = Depends(READ)) -> Response:
    return _media(*svc.review.preview(item_id, who))


@router.get(
    "/items/{item_id}/media",
    summary="The clear media: recorded as a reveal, refused at the daily cap (429)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def reveal(item_id: Id, svc: Services = Depends(services), who: Principal = Depends(REVIEW)) -> Response:
    return _media(*svc.review.reveal(item_id, who))


@router.get("/items/{item_id}/exif", summary="The file's EXIF or container metadata (recorded)")
def exif(item_id: Id, svc: Services = Depends(services), who: Principal = Depends(REVIEW)) -> dict:
    return svc.review.exif(item_id, who)


@router.get("/items/{item_id}/reveals", summary="Who revealed this file, and when")
def reveals(item_id: Id, svc: Services = Depends(services), _: Principal = Depends(READ)) -> dict:
    svc.cases.item(item_id)  # 404 for an unknown item rather than an empty list
    return {"item_id": item_id, "reveals": svc.review.reveals(item_id)}


@router.get("/wellness", summary="The caller's effective wellness settings and today's exposure")
def wellness(svc: Services = Depends(services), who: Principal = Depends(READ)) -> dict:
    prefs = svc.wellness.user_prefs(who.user_id)  # API keys have no preferences of their own
    return {
        "settings": svc.wellness.effective(prefs),
        "defaults": svc.wellness.defaults(),
        "exposure": svc.wellness.exposure(who.label, prefs),
    }


@router.put("/wellness/defaults", summary="Change the wellness defaults every reviewer starts from")
def set_wellness_defaults(
    body: WellnessDefaults,
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.SETTINGS_MANAGE)),
) -> dict:
    return svc.wellness.set_defaults(body.model_dump(exclude_unset=True), actor=who.label)
