"""Live streams (``/v1/live/streams``): register a stream, push its frames, report its risk, end it.

The platform (``events.write``) registers each stream it wants watched — frames pushed here, or pulled by Safehold
from an address on its network — and ends it; reviewers (``cases.read``) see the streams under watch, and a
senior reviewer may interrupt one by hand. See :mod:`safehold.pipeline.live` and docs/live.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute, matching
from safehold.api.deps import require, require_any, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.live.sampling import REASONS
from safehold.live.watch import MAX_STREAM_ID
from safehold.pipeline.live import MAX_VIEWERS
from safehold.services import Services

router = APIRouter(prefix="/v1/live", tags=["live"], route_class=ContractRoute)
WRITE = require(Permission.EVENTS_WRITE)
READ = require_any(Permission.EVENTS_WRITE, Permission.CASES_READ)

#: A platform id (stream, account, conversation): printable ASCII, not blank; in a path without '/' or '%'.
_ID = r"^[ -$&-.0-~]*[!-$&-.0-~][ -$&-.0-~]*$"
StreamId = Annotated[
    matching(_ID, "a stream id is printable ASCII without '/' or '%', not blank"),
    Path(max_length=MAX_STREAM_ID, description="The platform's id of the stream."),
]
Account = Annotated[
    matching(r"^[ -~]*[!-~][ -~]*$", "an account id is printable ASCII, not blank"), Field(max_length=128)
]
PullUrl = Annotated[
    matching(r"^(?:rtmp|rtsp|https?)://[A-Za-z0-9\[][A-Za-z0-9.:\[\]-]{0,252}(?:[/?][!-~]*)?$", "a stream url is "
             "rtmp://, rtsp://, http:// or https:// (HLS) with a host"),
    Field(max_length=2000),
]  # fmt: skip
#: Seconds since the epoch: from 2000 to 2100.
CapturedAt = Annotated[float, Query(ge=946684800, le=4102444800, description="Capture time, seconds since the epoch")]


class _StreamBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[
        matching(_ID, "a stream id is printable ASCII without '/' or '%', not blank"), Field(max_length=MAX_STREAM_ID)
    ]
    broadcaster: Account
    viewers: list[Account] = Field(default_factory=list, max_length=MAX_VIEWERS)
    chat_conversation: Account | None = Field(
        None, description="The stream's chat, scored through /v1/conversations: its grooming alert raises the risk."
    )


class PushStream(_StreamBase):
    source: Literal["push"]


class PullStream(_StreamBase):
    source: Literal["url"]
    url: PullUrl


StreamIn = Annotated[PushStream | PullStream, Field(discriminator="source")]


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal[REASONS] | None = None
    score: float | None = Field(None, ge=0, le=1, description="A classifier score (reason classifier_score).")
    viewers: list[Account] = Field(default_factory=list, max_length=MAX_VIEWERS, description="Viewers joining.")


class InterruptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=1000)


_FRAME_BODY = {
    "required": True,
    "content": {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.post("/streams", status_code=201, summary="Register a live stream to watch (pushed frames or a pulled url)")
def register(body: StreamIn, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.live.register(
        who.label,
        body.id,
        body.broadcaster,
        source=body.source,
        url=getattr(body, "url", None),
        viewers=body.viewers,
        chat_conversation=body.chat_conversation,
    )


@router.get("/streams", summary="The streams under watch, highest risk first")
def list_streams(
    ended: bool = Query(False, description="Include streams ended recently."),
    svc: Services = Depends(services),
    _=Depends(READ),
) -> dict:
    return {"streams": svc.live.list(ended=ended), "buffers": svc.live.buffers(), "process": svc.live.process}


@router.get("/streams/{stream_id}", summary="One stream: risk, sampling rate, frames seen, case")
def get_stream(stream_id: StreamId, svc: Services = Depends(services), _=Depends(READ)) -> dict:
    return svc.live.get(stream_id)


@router.delete("/streams/{stream_id}", summary="End a stream: stop watching it and drop its buffered frames")
def end_stream(stream_id: StreamId, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.live.end(who.label, stream_id)


@router.post(
    "/streams/{stream_id}/frames",
    summary="Push one frame (a JPEG or PNG body): sampled and judged, or skipped at the stream's current rate",
    openapi_extra={"requestBody": _FRAME_BODY},
)
async def push_frame(
    request: Request,
    stream_id: StreamId,
    captured_at: CapturedAt = None,
    svc: Services = Depends(services),
    who: Principal = Depends(WRITE),
) -> dict:
    # The sampling decision is a comparison in memory, taken here on the event loop: a skipped frame (most of
    # them) never waits for a worker thread behind the sampled ones being hashed.
    admitted = svc.live.admit(stream_id, captured_at)
    if not admitted.sampled:
        return svc.live.skipped(admitted)
    data = await request.body()
    return await run_in_threadpool(svc.live.judge, who.label, admitted, data)


@router.post("/streams/{stream_id}/signals", summary="Report what raises a stream's risk: a reason, viewers joining")
def signal(
    stream_id: StreamId, body: SignalIn, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.live.signal(who.label, stream_id, body.reason, score=body.score, viewers=body.viewers)


@router.post("/streams/{stream_id}/interrupt", summary="Interrupt a stream by hand: an interrupt action on its case")
def interrupt(
    stream_id: StreamId,
    body: InterruptIn = Body(default_factory=InterruptIn),
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.CASES_SENIOR)),
) -> dict:
    return svc.live.interrupt(who.label, stream_id, body.note)
