"""The queues (the console's home) and the reviewer's own page: wellness settings, exposure, breaks."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from safehold.auth import totp
from safehold.auth.roles import Permission
from safehold.cases.priority import BAND_NAMES
from safehold.cases.taxonomy import QUEUES
from safehold.http.params import Offset
from safehold.services import Services
from safehold.web.deps import ConsoleRoute, Staff, back, exposure, services, staff, wellness_of
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 50
StatusFilter = Literal["active", "open", "awaiting_confirmation", "escalated", "closed", "all"]
QueueName = Literal[QUEUES]  # type: ignore[valid-type]
BandName = Literal[BAND_NAMES]  # type: ignore[valid-type]
#: Wellness settings a reviewer may switch on (their protective value); unticked means "as the admin set it".
PROTECTIVE = {"blur": True, "greyscale": True, "thumbnails_first": True, "video_muted": True, "video_autoplay": False}


@router.get("/console")
def queue(
    request: Request,
    queue: QueueName | None = Query(None),
    status: StatusFilter = Query("active"),
    band: BandName | None = Query(None),
    overdue: bool = Query(False),
    mine: bool = Query(False),
    offset: Offset = 0,
    who: Staff = Depends(staff(Permission.CASES_READ)),
    svc: Services = Depends(services),
) -> Response:
    listing = svc.cases.list(
        status=status,
        queue=queue,
        band=band,
        overdue=overdue,
        claimed_by=who.label if mine else None,
        limit=PAGE_SIZE,
        offset=offset,
    )
    filters = {"queue": queue, "status": status, "band": band, "overdue": overdue, "mine": mine}
    return page(
        request,
        "queue.html",
        cases=listing["cases"],
        total=listing["total"],
        counts=svc.cases.counts(),
        filters=filters,
        offset=offset,
        page_size=PAGE_SIZE,
        queues=QUEUES,
        bands=BAND_NAMES,
    )


@router.get("/console/me")
def me(request: Request, who: Staff = Depends(staff()), svc: Services = Depends(services)) -> Response:
    reviewer = who.can(Permission.CASES_REVIEW)
    return page(
        request,
        "me.html",
        defaults=svc.wellness.defaults(),
        mine=who.user.wellness or {},
        effective=wellness_of(svc, who),
        exposure=exposure(svc, who) if reviewer else None,
        protective=PROTECTIVE,
        **totp_state(request, svc, who),
    )


def totp_state(request: Request, svc: Services, who: Staff) -> dict:
    """The account page's two-step log-in section: on or off, required or not, and a pending secret to show
    while the user is setting it up."""
    pending = None
    if request.query_params.get("totp") == "setup" and not who.user.totp_enrolled:
        secret, uri = svc.users.enrolment_secret(who.user.id)
        pending = {"secret": totp.grouped(secret), "uri": uri}
    return {
        "totp_on": who.user.totp_enrolled,
        "totp_required": svc.users.totp_required(who.role),
        "totp_pending": pending,
    }


@router.post("/console/me/wellness")
def save_wellness(
    blur: bool = Form(False),
    greyscale: bool = Form(False),
    thumbnails_first: bool = Form(False),
    video_muted: bool = Form(False),
    no_autoplay: bool = Form(False),
    daily_cap: int | None = Form(None, ge=0),
    break_every: int | None = Form(None, ge=1),
    break_minutes: int | None = Form(None, ge=1),
    who: Staff = Depends(staff()),
    svc: Services = Depends(services),
) -> Response:
    ticked = {"blur": blur, "greyscale": greyscale, "thumbnails_first": thumbnails_first, "video_muted": video_muted}
    prefs: dict = {name: True for name, on in ticked.items() if on}
    if no_autoplay:
        prefs["video_autoplay"] = False
    numbers = {"daily_cap": daily_cap, "break_every": break_every, "break_minutes": break_minutes}
    prefs.update({name: value for name, value in numbers.items() if value is not None})
    svc.users.set_wellness(who.user.id, svc.wellness.validate_user_prefs(prefs), actor=who.label)
    return back("/console/me", "wellness")


@router.post("/console/me/break")
def take_break(who: Staff = Depends(staff(Permission.CASES_REVIEW)), svc: Services = Depends(services)) -> Response:
    svc.wellness.take_break(who.label)
    return back("/console/me", "break")
