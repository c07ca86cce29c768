"""Scanning: a file, a raw hash or a URL against every bank; one at a time or in batches.

A scan without ``content_id`` or ``account_id`` (form fields, or JSON keys) is a lookup: it answers the verdict
and records nothing. With one of them it names a subject, and a match on a block bank whose ``on_match`` is
``case`` or ``auto`` (or, for an uploaded image, an enabled classifier's hit) opens (or updates) that subject's
case for review, listed under ``cases``; repeating the same scan of the same subject answers what the first one
did, with ``duplicate: true``. The route only parses and formats: the answer is the scan door's
(:meth:`safehold.pipeline.events.EventService.scanned`), the same as ``safehold scan --record``'s, and what is
recorded the pipeline's (docs/cases.md). Matched entries show their provenance
only to callers allowed to read banks (:func:`safehold.scanning.service.sees_provenance`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter
from starlette.concurrency import run_in_threadpool

from safehold import jsonlimits
from safehold.api.contract import ContractRoute, HttpUrl, SignalTypeName, body_schema
from safehold.api.deps import require, services
from safehold.api.multipart import UploadForm, read_upload_form
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.errors import SafeholdError, validated
from safehold.scanning.service import signal_dict
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["scan"], route_class=ContractRoute)
SCAN = Depends(require(Permission.SCAN))
MAX_BATCH = 1000

_SUBJECT = {
    "content_id": {"type": "string", "maxLength": 128, "description": "The platform's id of the content."},
    "account_id": {"type": "string", "maxLength": 128, "description": "The platform's id of its account."},
}
#: The caller's age signals for classifier hits on the scanned image (docs/classifiers.md, "Classifier policy").
_AGE = {
    "depicted_minor": {
        "type": "string",
        "enum": ["true", "false"],
        "description": "The person shown is (suspected to be) a minor.",
    },
    "grooming_conversation": {
        "type": "string",
        "maxLength": 128,
        "description": "The conversation the file came in; it must have an open grooming alert or case.",
    },
}
#: The request body of a route that takes one file.
MULTIPART_FILE = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    }
}
_MULTIPART_SCAN = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}, **_SUBJECT, **_AGE},
            "required": ["file"],
        }
    }
}
_MULTIPART_BATCH = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                "files": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "minItems": 1,
                    "maxItems": MAX_BATCH,
                }
            },
            "required": ["files"],
        }
    }
}


class _Subject(BaseModel):
    # A scan is a hash or a URL, never both: the schema's two alternatives refuse each other's fields.
    model_config = ConfigDict(extra="forbid")
    content_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Names the subject; without it or account_id the scan is a lookup and opens no case.",
    )
    account_id: str | None = Field(None, min_length=1, max_length=128, description="The content's account.")
    depicted_minor: bool = Field(False, description=_AGE["depicted_minor"]["description"])
    grooming_conversation: str | None = Field(
        None, min_length=1, max_length=128, description=_AGE["grooming_conversation"]["description"]
    )


class HashScan(_Subject):
    """A raw hash of a known signal type."""

    signal_type: SignalTypeName
    value: str = Field(min_length=1, max_length=1_000_000)


class UrlScan(_Subject):
    """A URL to check against URL banks and, unless ``fetch`` is false, to fetch and scan."""

    url: HttpUrl = Field(max_length=8192)
    fetch: bool = Field(True, description="Also fetch the URL and scan what it serves (SSRF-guarded).")


#: One JSON scan: a raw hash (``signal_type`` + ``value``) or a ``url``. Which one is read from the ``url`` key, so
#: a refusal names the fields of the kind of scan sent, not both kinds' (``url.url: …``, ``hash.value: …``).
ScanItem = Annotated[
    Annotated[HashScan, Tag("hash")] | Annotated[UrlScan, Tag("url")],
    Discriminator(
        lambda body: "url" if isinstance(body, dict) and "url" in body or isinstance(body, UrlScan) else "hash"
    ),
]
_SCAN_ITEM = TypeAdapter(ScanItem)


class ScanBatch(BaseModel):
    items: list[ScanItem] = Field(min_length=1, max_length=MAX_BATCH)


def _scan_item(svc: Services, who: Principal, item: ScanItem) -> dict:
    if isinstance(item, UrlScan):
        result, url = svc.scans.scan_url(item.url, fetch_content=item.fetch, caller=who.label), item.url
    else:
        result, url = svc.scans.scan_hash(item.signal_type, item.value), None
    ids = {"content_id": item.content_id, "account_id": item.account_id}
    age = {"depicted_minor": item.depicted_minor, "grooming_conversation": item.grooming_conversation}
    return svc.events.scanned(who, result, result.fetched, url=url, **ids, **age)


def _scan_file(svc: Services, who: Principal, data: bytes, name: str | None, **ids) -> dict:
    return svc.events.scanned(who, svc.scans.scan_bytes(data, filename=name), data, filename=name, **ids)


async def json_body(request: Request) -> object:
    """The JSON body, parsed by the same bounded parser the request limits check it with (depth, numbers)."""
    return jsonlimits.loads(await request.body(), request.app.state.services.settings.max_json_depth)


@router.post(
    "/scan",
    summary="Scan one file (multipart 'file'), one raw hash or one URL (JSON)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {**_MULTIPART_SCAN, "application/json": {"schema": body_schema(ScanItem)}},
        }
    },
)
async def scan(request: Request, svc: Services = Depends(services), who: Principal = SCAN) -> dict:
    if is_multipart(request):
        form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes)
        name, data = one_upload(form)
        ids = {k: _form_id(form, k) for k in _SUBJECT}
        ids.update(
            depicted_minor=_form_flag(form, "depicted_minor"),
            grooming_conversation=_form_id(form, "grooming_conversation"),
        )
        return await run_in_threadpool(_scan_file, svc, who, data, name, **ids)
    item = validated(_SCAN_ITEM, await json_body(request))
    return await run_in_threadpool(_scan_item, svc, who, item)


@router.post(
    "/scan/batch",
    summary=f"Scan up to {MAX_BATCH} items: multipart 'files', or JSON {{items: [...]}}",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {**_MULTIPART_BATCH, "application/json": {"schema": body_schema(ScanBatch)}},
        }
    },
)
async def scan_batch(request: Request, svc: Services = Depends(services), who: Principal = SCAN) -> dict:
    """Each item answers on its own: one bad item gives that item an ``error``, not the whole batch. JSON items
    that name a subject open cases as in ``/v1/scan``; multipart files name none, so they are lookups."""
    results: list[dict] = []
    if is_multipart(request):
        form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes, max_files=MAX_BATCH)
        uploads = form.all_files("files")
        if not uploads:
            raise SafeholdError("request.missing_file", "Send the content as multipart fields named 'files'.")
        for i, upload in enumerate(uploads):
            try:
                data = upload.content()
                results.append({"index": i, **await run_in_threadpool(_scan_file, svc, who, data, upload.filename)})
            except SafeholdError as exc:
                results.append({"index": i, "name": upload.filename, "verdict": None, "error": exc.to_dict()})
        return {"results": results}
    batch = validated(ScanBatch, await json_body(request))
    for i, item in enumerate(batch.items):
        try:
            results.append({"index": i, **await run_in_threadpool(_scan_item, svc, who, item)})
        except SafeholdError as exc:
            results.append({"index": i, "verdict": None, "error": exc.to_dict()})
    return {"results": results}


@router.post(
    "/hash",
    summary="Hash a file (multipart 'file') without matching it",
    openapi_extra={"requestBody": {"required": True, "content": MULTIPART_FILE}},
)
async def hash_file(request: Request, svc: Services = Depends(services), _=SCAN) -> dict:
    if not is_multipart(request):
        raise SafeholdError("request.missing_file", "Send the content as a multipart field named 'file'.")
    form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes)
    name, data = one_upload(form)
    hashed = await run_in_threadpool(svc.scans.hash_bytes, data, name)
    return {
        "media": hashed.media,
        "size": len(data),
        "signals": [signal_dict(s) for s in hashed.signals],
        "error": hashed.errors[0].to_dict() if hashed.errors else None,
    }


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


def _form_id(form: UploadForm, field: str) -> str | None:
    """An optional short text field of a multipart form (a platform id)."""
    value = form.fields.get(field)
    if not value:
        return None
    if len(value) > 128:
        raise SafeholdError("request.invalid", f"{field} is a text field of at most 128 characters.", status=422)
    return value


def _form_flag(form: UploadForm, field: str) -> bool:
    """An optional ``true``/``false`` field of a multipart form (absent or empty: false)."""
    value = (form.fields.get(field) or "false").strip().lower()
    if value not in ("true", "false"):
        raise SafeholdError("request.invalid", f"{field} is 'true' or 'false'.", status=422)
    return value == "true"


def one_upload(form: UploadForm) -> tuple[str | None, bytes]:
    """The multipart field ``file``: its name and bytes (size-capped as they arrived)."""
    upload = form.file("file")
    if upload is None:
        raise SafeholdError("request.missing_file", "Send the content as a multipart field named 'file'.")
    return upload.filename, upload.content()
