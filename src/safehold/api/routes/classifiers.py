"""Classifiers of new material: which run, their policy and thresholds, their reviewed precision, and scoring an
image without recording anything (docs/classifiers.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.api.multipart import read_upload_form
from safehold.api.routes.scan import MULTIPART_FILE, is_multipart, one_upload
from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["classifiers"], route_class=ContractRoute)
SCAN = Depends(require(Permission.SCAN))


# ------------------------------------------------------------------ trying the classifiers on a file


@router.post(
    "/classify",
    summary="Score one image or video (multipart 'file') with every enabled classifier, recording nothing",
    openapi_extra={"requestBody": {"required": True, "content": MULTIPART_FILE}},
)
async def classify(request: Request, svc: Services = Depends(services), _=SCAN) -> dict:
    """An operator tries the classifiers on a file: the scores of each (a video's per sampled frame too) and
    which are hits at the thresholds. Bounded like ``/v1/scan`` (upload size, pixels, JPEG structure, video
    length); nothing is recorded, kept or counted, and no case is opened (docs/classifiers.md)."""
    if not is_multipart(request):
        raise SafeholdError("request.missing_file", "Send the content as a multipart field named 'file'.")
    form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes)
    name, data = one_upload(form)
    result = await run_in_threadpool(svc.classifiers.classify_file, data, name)
    return {"name": name, "size": len(data), **result.to_dict()}
