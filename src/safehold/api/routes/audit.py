"""The audit log (admins and auditors): list, verify the hash chain, export for offline verification."""

from __future__ import annotations

import datetime as dt
import tempfile
from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.params import AfterId
from safehold.http.uploads import CHUNK
from safehold.services import Services

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=ContractRoute)

READ = Depends(require(Permission.AUDIT_READ))
MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


@router.get("", summary="A page of audit records in order (keyset pagination with after_seq)")
def list_records(
    after_seq: AfterId = 0,
    limit: int = Query(100, ge=1, le=1000),
    action: str | None = Query(None, max_length=64, description="Exact action, or a prefix ending in '.'"),
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    rows = svc.audit.list(limit=limit, after_seq=after_seq, action=action)
    return {"records": rows, "next_after_seq": rows[-1]["seq"] if len(rows) == limit else None}


@router.get("/verify", summary="Verify the whole hash chain; reports the first bad record")
def verify(svc: Services = Depends(services), _=READ) -> dict:
    return svc.audit.verify().to_dict()


@router.get(
    "/export",
    summary="Export the log with its hashes (JSON lines or CSV) for offline verification",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in MEDIA.values()}}},
)
def export(
    format: Literal["jsonl", "csv"] = "jsonl",
    since: dt.datetime | None = Query(None, description="Only records at or after this time (ISO 8601)"),
    until: dt.datetime | None = Query(None, description="Only records before this time (ISO 8601)"),
    svc: Services = Depends(services),
    who: Principal = READ,
) -> StreamingResponse:
    window = {"format": format, "since": since and since.isoformat(), "until": until and until.isoformat()}
    svc.audit.record(None, who.label, "audit.export", "audit", window)
    buf = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    svc.audit.export(buf, fmt=format, since=since, until=until)
    buf.seek(0)

    def body():
        with buf:
            while chunk := buf.read(CHUNK):
                yield chunk

    return StreamingResponse(
        body(),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="audit.{format}"'},
    )
