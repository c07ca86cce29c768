"""A case: its signals, items, history and the reviewer's tools (claim, reveal, decide, confirm, bank).

Media reaches the browser in two forms only. Previews are small, blurred and greyscale on the server, so the
clear file never leaves it before a reveal. A reveal is an explicit POST (the Reveal button, CSRF-checked): its
answer is the case page with that one item's clear media in it, fetched from ``/console/items/{id}/media``,
which records the reveal (one audit record per fetch) and refuses at the daily cap. A link or a reload cannot
reveal anything: there is no GET page that embeds clear media. A video whose frames matched an image bank shows
those frames the same way, each blurred with its timestamp and revealable alone
(``/console/items/{id}/frames/{n}/…``); a frame's reveal is recorded as a reveal of its video.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission, demand
from safehold.cases.taxonomy import CLASSIFICATIONS, CSE_KINDS, VIOLATING
from safehold.errors import SafeholdError
from safehold.http.params import MAX_DB_INT, Id
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, exposure, services, staff, wellness_of
from safehold.web.render import page, secure

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

#: The decision form's choices: value → (decision, classification). Keys 1–4 pick the CSAM classifications.
OUTCOMES = {
    **{f"csam:{c}": ("csam", c) for c in CLASSIFICATIONS},
    **{f"cse:{k}": ("cse", k) for k in CSE_KINDS},
    "not_violating": ("not_violating", None),
    "escalate": ("escalate", None),
}


def case_page(
    request: Request,
    svc: Services,
    who: Staff,
    case_id: int,
    revealed: int | None = None,
    revealed_frame: tuple[int, int] | None = None,
) -> Response:
    case = svc.review.view(case_id, who.principal)
    closed_violating = case["status"] == "closed" and case["decision"] in VIOLATING
    media_items = [i for i in case["items"] if i["has_media"]]
    return page(
        request,
        "case.html",
        case=case,
        actions=svc.actions.list_for_case(case_id),
        reveals={i["id"]: svc.review.reveals(i["id"]) for i in media_items},
        banks=[b for b in svc.banks.list() if b.kind == "block"] if closed_violating else [],
        closed_violating=closed_violating,
        reports=svc.reports.list(case_id=case_id) if closed_violating and who.can(Permission.REPORTS_READ) else [],
        wellness=wellness_of(svc, who),
        revealed=revealed,
        revealed_frame=revealed_frame,
        classifications=CLASSIFICATIONS,
        cse_kinds=CSE_KINDS,
        explained=[sig for sig in case["signals"] if (sig.get("detail") or {}).get("explanation")],
        account_age=svc.ages.resolved(case["account_id"])
        if case["account_id"] and who.can(Permission.AGES_READ)
        else None,
    )


@router.get("/console/cases/{case_id}")
def show(
    request: Request,
    case_id: Id,
    who: Staff = Depends(staff(Permission.CASES_READ)),
    svc: Services = Depends(services),
) -> Response:
    return case_page(request, svc, who, case_id)


def _override(who: Staff, override: bool, svc: Services, request: Request) -> bool:
    """Taking over another reviewer's claim is for senior reviewers; asking without the right is refused."""
    if override:
        demand(svc.audit, who.role, who.label, Permission.CASES_SENIOR, f"POST {request.url.path}", "take over a claim")
    return override


@router.post("/console/cases/{case_id}/claim")
def claim(
    request: Request,
    case_id: Id,
    override: bool = Form(False),
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    svc.cases.claim(case_id, who.label, override=_override(who, override, svc, request))
    return back(f"/console/cases/{case_id}", "claimed")


@router.post("/console/cases/{case_id}/release")
def release(
    request: Request,
    case_id: Id,
    override: bool = Form(False),
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    svc.cases.release(case_id, who.label, override=_override(who, override, svc, request))
    return back("/console", "released")


@router.post("/console/cases/{case_id}/decision")
def decide(
    case_id: Id,
    outcome: str = Form(...),
    note: str = Form("", max_length=4000),
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    if outcome not in OUTCOMES:
        raise SafeholdError("review.invalid_decision", "Choose one of the decisions on the form.")
    decision, classification = OUTCOMES[outcome]
    svc.review.decide(case_id, who.principal, decision, classification=classification, note=note or None)
    return back(f"/console/cases/{case_id}", "decided")


@router.post("/console/cases/{case_id}/confirmation")
def confirm(
    case_id: Id,
    agree: bool = Form(...),
    note: str = Form("", max_length=4000),
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    svc.review.confirm(case_id, who.principal, agree, note=note or None)
    return back(f"/console/cases/{case_id}", "confirmed")


@router.post("/console/cases/{case_id}/bank")
def add_to_bank(
    case_id: Id,
    item_id: int = Form(..., ge=1, le=MAX_DB_INT),
    bank: str = Form(..., max_length=64),
    who: Staff = Depends(staff(Permission.BANKS_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    svc.review.add_to_bank(case_id, item_id, bank, who.principal)
    return back(f"/console/cases/{case_id}", "banked")


def _under_exposure_cap(request: Request, svc: Services, who: Staff) -> None:
    """Refuse a reveal (an item's media or a video frame) once the reviewer reached today's cap; the page shows
    today's count either way."""
    seen = exposure(svc, who)
    request.state.wellness_banner = seen
    if seen["remaining"] <= 0:
        raise SafeholdError(
            "review.exposure_cap",
            f"You have revealed {seen['today']} items today, your daily limit. Please stop for today.",
            status=429,
        )


@router.post("/console/items/{item_id}/reveal")
def reveal(
    request: Request,
    item_id: Id,
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    item = svc.cases.item(item_id)
    _under_exposure_cap(request, svc, who)
    return case_page(request, svc, who, item["case_id"], revealed=item_id)


def _media(data: bytes, content_type: str) -> Response:
    headers = {"Content-Disposition": "inline", "Cache-Control": "no-store"}
    return secure(Response(data, media_type=content_type, headers=headers))


@router.get("/console/items/{item_id}/media")
def media(
    item_id: Id, who: Staff = Depends(staff(Permission.CASES_REVIEW)), svc: Services = Depends(services)
) -> Response:
    return _media(*svc.review.reveal(item_id, who.principal))


@router.get("/console/items/{item_id}/preview")
def preview(
    item_id: Id, who: Staff = Depends(staff(Permission.CASES_READ)), svc: Services = Depends(services)
) -> Response:
    return _media(*svc.review.preview(item_id, who.principal))


#: A matched frame's place in its item's ``metadata.frames`` (the pipeline keeps at most 256).
Frame = Annotated[int, Path(ge=0, le=255)]


@router.post("/console/items/{item_id}/frames/{number}/reveal")
def reveal_frame(
    request: Request,
    item_id: Id,
    number: Frame,
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    """The case page with one matched video frame in the clear (recorded when the browser fetches it)."""
    item = svc.cases.item(item_id)
    _under_exposure_cap(request, svc, who)
    return case_page(request, svc, who, item["case_id"], revealed_frame=(item_id, number))


@router.get("/console/items/{item_id}/frames/{number}/media")
def frame_media(
    item_id: Id,
    number: Frame,
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    return _media(*svc.review.reveal_frame(item_id, number, who.principal))


@router.get("/console/items/{item_id}/frames/{number}/preview")
def frame_preview(
    item_id: Id,
    number: Frame,
    who: Staff = Depends(staff(Permission.CASES_READ)),
    svc: Services = Depends(services),
) -> Response:
    return _media(*svc.review.preview_frame(item_id, number, who.principal))


@router.get("/console/items/{item_id}/exif")
def exif(
    request: Request,
    item_id: Id,
    who: Staff = Depends(staff(Permission.CASES_REVIEW)),
    svc: Services = Depends(services),
) -> Response:
    item = svc.cases.item(item_id)
    return page(request, "exif.html", item=item, exif=svc.review.exif(item_id, who.principal))
