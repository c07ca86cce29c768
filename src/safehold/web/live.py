"""Live streams under watch (docs/live.md): their risk, their last sampled frames (blurred previews, made on the
server like a case item's), and a one-click interrupt for senior reviewers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from safehold.auth.roles import Permission
from safehold.live.watch import RECENT
from safehold.services import Services
from safehold.web.cases import _media
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
StreamId = Annotated[str, Path(max_length=128)]


@router.get("/console/live")
def live(
    request: Request, who: Staff = Depends(staff(Permission.CASES_READ)), svc: Services = Depends(services)
) -> Response:
    streams = svc.live.list(ended=True)
    frames = {s["id"]: svc.live.recent(s["id"]) for s in streams}
    return page(request, "live.html", streams=streams, frames=frames, recent=RECENT)


@router.get("/console/live/{stream_id}/frames/{n}/preview")
def frame_preview(
    stream_id: StreamId,
    n: Annotated[int, Path(ge=0, lt=RECENT)],
    who: Staff = Depends(staff(Permission.CASES_READ)),
    svc: Services = Depends(services),
) -> Response:
    return _media(*svc.live.preview(stream_id, n))


@router.post("/console/live/{stream_id}/interrupt")
def interrupt(
    stream_id: StreamId, who: Staff = Depends(staff(Permission.CASES_SENIOR)), svc: Services = Depends(services)
):
    svc.live.interrupt(who.label, stream_id, "from the console")
    return back("/console/live", "stream_interrupted")
