"""Nudity protection for minors (docs/safety.md): ``POST /v1/media/check`` before an image in a message is shown
(``deliver``) or sent (``send``), and the operator's media policy (``GET``/``PUT /v1/safety/media-policy``).

The route parses the bounded multipart upload as ``/v1/scan`` does and hands it to the service
(:class:`safehold.safety.media.MediaCheck`), which decides, and opens a case when an adult's explicit image
goes to a minor.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute, error_responses
from safehold.api.deps import require, require_any, services
from safehold.api.multipart import read_upload_form
from safehold.api.routes.scan import is_multipart, one_upload
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.errors import SafeholdError
from safehold.safety.media import STAGES, MediaPolicy
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["safety"], route_class=ContractRoute)
CHECK = Depends(require(Permission.SAFETY_CHECK))
READ = Depends(require_any(Permission.STATS_READ, Permission.SAFETY_CHECK))
MANAGE = Depends(require(Permission.SETTINGS_MANAGE))
_ID = {"type": "string", "minLength": 1, "maxLength": 128}
_FIELDS = {
    "file": {"type": "string", "format": "binary"},
    "sender": {**_ID, "description": "The platform's id of the sending account."},
    "recipient": {**_ID, "description": "The receiving account; required for stage=deliver."},
    "content_id": {**_ID, "description": "The message's id, named on a case if one is opened."},
    "locale": {"type": "string", "maxLength": 35, "description": "Locale of the prompts (BCP 47), default en."},
}
_MULTIPART = {
    "multipart/form-data": {
        "schema": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {**_FIELDS, "stage": {"type": "string", "enum": ["deliver"]}},
                    "required": ["file", "sender", "recipient", "stage"],
                },
                {
                    "type": "object",
                    "properties": {**_FIELDS, "stage": {"type": "string", "enum": ["send"]}},
                    "required": ["file", "sender", "stage"],
                },
            ]
        }
    }
}


def _field(form, name: str) -> str | None:
    value = form.fields.get(name)
    return value if value else None


@router.post(
    "/media/check",
    summary="Decide what to do with an image in a message to or from a minor: allow, blur, block or warn",
    openapi_extra={"requestBody": {"required": True, "content": _MULTIPART}},
    responses=error_responses(503),
)
async def media_check(request: Request, svc: Services = Depends(services), who: Principal = CHECK) -> dict:
    """Multipart: ``file`` (the image), ``sender``, ``recipient`` (for ``deliver``), ``stage`` (``deliver`` or
    ``send``), optional ``locale`` and ``content_id``. Adults' messages are answered without being classified."""
    if not is_multipart(request):
        raise SafeholdError("request.missing_file", "Send the image as a multipart field named 'file'.")
    form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes)
    _, data = one_upload(form)
    stage = _field(form, "stage") or "deliver"
    if stage not in STAGES:
        raise SafeholdError("media.invalid_check", f"stage must be one of {', '.join(STAGES)}.", status=422)
    return await run_in_threadpool(
        svc.media_check.check,
        data,
        sender=_field(form, "sender"),
        recipient=_field(form, "recipient"),
        stage=stage,
        locale=_field(form, "locale") or "en",
        content_id=_field(form, "content_id"),
        actor=who.label,
        scope=who.key_prefix or who.label,
    )


@router.get("/safety/media-policy", summary="The media policy: classifier, label, action and threshold per band")
def get_media_policy(svc: Services = Depends(services), _=READ) -> dict:
    return svc.media_check.policy_info()


@router.put("/safety/media-policy", summary="Replace the media policy (missing fields take their defaults)")
def put_media_policy(policy: MediaPolicy, svc: Services = Depends(services), who: Principal = MANAGE) -> dict:
    return svc.media_check.set_policy(policy.model_dump(mode="json"), who.label)
