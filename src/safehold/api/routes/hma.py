"""HMA's routes at HMA's paths (``/m/…`` matching, ``/h/…`` hashing, ``/c/…`` bank curation), behind Safehold's
API keys: a platform integrated with Meta's Hasher-Matcher-Actioner points it at Safehold and adds an
``Authorization: Bearer <key>`` header. Each route parses HMA's parameters and calls :mod:`safehold.api.hma`,
which calls Safehold's services and shapes their answers as HMA does. HMA version followed: docs/sharing.md.

Permissions: lookups and hashing need ``scan`` (a platform key), reading banks ``banks.read`` and changing them
``banks.write``. Errors carry HMA's ``message`` beside Safehold's ``error.code`` (:func:`safehold.api.hma.error_body`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from safehold.api import hma
from safehold.api.contract import AUTHENTICATED, BODY, BODY_METHODS, ERRORS, ErrorDetail, HttpUrl, body_schema
from safehold.api.deps import require, services
from safehold.api.multipart import UploadForm, read_upload_form
from safehold.api.routes.banks import BankName
from safehold.api.routes.scan import is_multipart, json_body
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.errors import SafeholdError, validated
from safehold.http.params import Id
from safehold.services import Services


class HmaErrorBody(BaseModel):
    """An error of the HMA routes: HMA's ``message`` and Safehold's ``error``."""

    message: str = Field(description="HMA's error field: for people.")
    error: ErrorDetail


class HmaRoute(APIRoute):
    """An HMA route: its OpenAPI lists the error answers of its class with :class:`HmaErrorBody`."""

    def __init__(self, path: str, endpoint: Any, *, responses: dict | None = None, **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        statuses = AUTHENTICATED + (BODY if methods & BODY_METHODS else ())
        errors = {s: {"model": HmaErrorBody, "description": ERRORS[s]} for s in statuses}
        super().__init__(path, endpoint, responses={**errors, **(responses or {})}, **kwargs)


router = APIRouter(tags=["hma"], route_class=HmaRoute)
SCAN = Depends(require(Permission.SCAN))
READ = Depends(require(Permission.BANKS_READ))
WRITE = Depends(require(Permission.BANKS_WRITE))


def _hma_signal_types(schema: dict[str, Any]) -> None:
    from safehold.signals import registry

    schema["enum"] = sorted({*registry.all_signal_types(), *hma.TO_SAFEHOLD})


SignalType = Annotated[str, Query(max_length=64, json_schema_extra=_hma_signal_types)]
Signal = Annotated[str, Query(min_length=1, max_length=100_000, description="The hash.")]
Banks = Annotated[str | None, Query(max_length=8192, description="Only these banks (comma-separated names).")]
Types = Annotated[str | None, Query(max_length=1024, description="Only these signal types (comma-separated).")]
ContentType = Annotated[Literal["photo", "video"] | None, Query(description="What the URL serves (checked).")]
Seed = Annotated[str | None, Query(max_length=256, description="Accepted for HMA clients; no coinflip here.")]
Url = Annotated[HttpUrl | None, Query(max_length=8192, description="A URL to fetch (SSRF-guarded) and hash.")]

_UPLOAD = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"photo": {"type": "string", "format": "binary"}},
            "required": ["photo"],
        }
    }
}


class Metadata(BaseModel):
    """HMA's banked content metadata: ``content_id`` becomes the entry's external id, the rest its metadata."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    content_id: str | None = Field(None, max_length=128)
    content_uri: str | None = Field(None, max_length=8192)
    json_data: dict | None = Field(None, alias="json")
    collab: dict | None = Field(None, description="HMA's exchange provenance: ignored.")


Note = Field(None, max_length=10_000)
#: The most signals one ``/c/bank/<name>/signal`` request banks (HMA's content has one per signal type).
MAX_SIGNALS = 16


class ContentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: Metadata | None = None
    note: str | None = Note


#: HMA's matching ratio as Safehold has it: a bank matches or not (``hma.unsupported_ratio`` for anything else).
RATIO = {"enum": [0, 1, None]}


class BankCreate(BaseModel):
    name: BankName
    enabled_ratio: float | None = Field(None, description="1.0 (enabled, the default) or 0.0.", json_schema_extra=RATIO)
    enabled: bool | None = None


class BankUpdate(BaseModel):
    name: BankName | None = None
    enabled_ratio: float | None = Field(None, description="1.0 (enabled) or 0.0 (disabled).", json_schema_extra=RATIO)
    enabled: bool | None = None


class ContentUpdate(BaseModel):
    disable_until_ts: int | None = Field(None, ge=0, le=1, description="1: enabled, 0: disabled.")
    note: str | None = Note


class Signals(BaseModel):
    """``{signal_type: hash, ...}`` (at most :data:`MAX_SIGNALS`) and an optional ``note``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 100_000},
            "maxProperties": MAX_SIGNALS + 1,
        },
    )
    note: str | None = Note

    @model_validator(mode="after")
    def _hashes_are_strings(self) -> Signals:
        extra = self.model_extra or {}
        if len(extra) > MAX_SIGNALS:
            raise ValueError(f"at most {MAX_SIGNALS} signals at once")
        for key, value in extra.items():
            if not isinstance(value, str) or not 1 <= len(value) <= 100_000:
                raise ValueError(f"{key}: a hash is a string of 1 to 100000 characters")
        return self


def _meta(m: Metadata | None) -> dict | None:
    return None if m is None else m.model_dump(by_alias=True, exclude_none=True)


async def _upload(request: Request, svc: Services) -> tuple[UploadForm, bytes, str | None]:
    """HMA's upload: one file in a multipart field named after its content type (``photo`` or ``video``)."""
    form = await read_upload_form(request, max_file_bytes=svc.settings.max_upload_bytes)
    part = next((f for f in form.files if f.field in hma.CONTENT_TYPES), None)
    if part is None:
        raise SafeholdError("request.missing_file", "Send the content as a multipart field named 'photo' or 'video'.")
    return form, part.content(), part.filename


# ---------------------------------------------------------------- matching


@router.get("/m/raw_lookup", summary="HMA: look a hash up; content ids of its matches")
def raw_lookup(
    signal: Signal,
    signal_type: SignalType,
    banks: Banks = None,
    include_distance: bool = False,
    svc: Services = Depends(services),
    _=SCAN,
) -> dict:
    return hma.raw_lookup(svc, signal_type, signal, banks=banks, include_distance=include_distance)


@router.get("/m/lookup", summary="HMA: look a hash (or what a URL serves) up; matches by bank")
def lookup(
    url: Url = None,
    signal: Annotated[str | None, Query(min_length=1, max_length=100_000)] = None,
    signal_type: Annotated[str | None, Query(max_length=64, json_schema_extra=_hma_signal_types)] = None,
    content_type: ContentType = None,
    types: Types = None,
    banks: Banks = None,
    seed: Seed = None,
    bypass_coinflip: bool = False,
    svc: Services = Depends(services),
    who: Principal = SCAN,
) -> dict:
    if url:
        data, name = hma.fetched(svc, who, url)
        return hma.lookup_content(
            svc, data, name=name, banks=banks, content_type=content_type, types=types, signal_type=signal_type
        )
    if not signal or not signal_type:
        raise SafeholdError("hma.missing_input", "Give url, or both signal and signal_type.")
    return hma.lookup_hash(svc, signal_type, signal, banks=banks)


@router.post(
    "/m/lookup",
    summary="HMA: hash an uploaded file (multipart 'photo' or 'video') and look it up",
    openapi_extra={"requestBody": {"required": True, "content": _UPLOAD}},
)
async def lookup_file(
    request: Request,
    banks: Banks = None,
    seed: Seed = None,
    bypass_coinflip: bool = False,
    svc: Services = Depends(services),
    _=SCAN,
) -> dict:
    _, data, name = await _upload(request, svc)
    return await run_in_threadpool(hma.lookup_content, svc, data, name=name, banks=banks)


# ----------------------------------------------------------------- hashing


@router.get("/h/hash", summary="HMA: fetch a URL and hash what it serves")
def hash_url(
    url: Annotated[HttpUrl, Query(max_length=8192)],
    content_type: ContentType = None,
    types: Types = None,
    svc: Services = Depends(services),
    who: Principal = SCAN,
) -> dict[str, str]:
    data, name = hma.fetched(svc, who, url)
    return hma.hashes(svc, data, name=name, content_type=content_type, types=types)


@router.post(
    "/h/hash",
    summary="HMA: hash an uploaded file (multipart 'photo' or 'video')",
    openapi_extra={"requestBody": {"required": True, "content": _UPLOAD}},
)
async def hash_file(request: Request, svc: Services = Depends(services), _=SCAN) -> dict[str, str]:
    _, data, name = await _upload(request, svc)
    return await run_in_threadpool(hma.hashes, svc, data, name=name, content_type=None, types=None)


# ---------------------------------------------------------------- curation


@router.get("/c/banks", summary="HMA: list banks")
def list_banks(svc: Services = Depends(services), _=READ) -> list[dict]:
    return [hma.bank_config(b) for b in svc.banks.list()]


@router.post("/c/banks", status_code=201, summary="HMA: create a bank")
def create_bank(body: BankCreate, svc: Services = Depends(services), who: Principal = WRITE) -> dict:
    enabled = hma.enabled_from(body.enabled, body.enabled_ratio)
    return hma.create_bank(svc, who, body.name, enabled is not False)


@router.get("/c/bank/{name}", summary="HMA: one bank")
def get_bank(name: str, svc: Services = Depends(services), _=READ) -> dict:
    return hma.bank_config(svc.banks.get(name))


@router.put("/c/bank/{name}", summary="HMA: rename, enable or disable a bank")
def update_bank(name: str, body: BankUpdate, svc: Services = Depends(services), who: Principal = WRITE) -> dict:
    return hma.update_bank(svc, who, name, body.name, hma.enabled_from(body.enabled, body.enabled_ratio))


@router.delete("/c/bank/{name}", summary="HMA: delete a bank and its contents")
def delete_bank(name: str, svc: Services = Depends(services), who: Principal = WRITE) -> dict:
    return hma.delete_bank(svc, who, name)


@router.post(
    "/c/bank/{name}/content",
    summary="HMA: bank a file (multipart 'photo' or 'video') or what a URL serves (?url=)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "photo": {"type": "string", "format": "binary"},
                            "metadata": {
                                "type": "string",
                                "description": "A JSON object: content_id, content_uri, json",
                            },
                            "note": {"type": "string", "maxLength": 10_000},
                        },
                        "required": ["photo"],
                    }
                },
                "application/json": {"schema": body_schema(ContentBody)},
            }
        }
    },
)
async def add_content(
    name: str,
    request: Request,
    url: Url = None,
    content_type: ContentType = None,
    svc: Services = Depends(services),
    who: Principal = WRITE,
) -> dict:
    if is_multipart(request):
        form, data, filename = await _upload(request, svc)
        raw = {"metadata": hma.metadata_field(form.fields.get("metadata")), "note": form.fields.get("note")}
        body = validated(ContentBody, {k: v for k, v in raw.items() if v is not None}, "the form")
    else:
        payload = await json_body(request) if await request.body() else {}
        body = validated(ContentBody, payload)
        if not url:
            raise SafeholdError("hma.missing_input", "Give ?url=, or upload the file as multipart 'photo' or 'video'.")
        data, filename = await run_in_threadpool(hma.fetched, svc, who, url)
    return await run_in_threadpool(
        hma.add_file, svc, who, name, data, name=filename, metadata=_meta(body.metadata), note=body.note
    )


@router.post("/c/bank/{name}/signal", summary="HMA: bank raw hashes ({signal_type: hash})")
def add_signals(name: str, body: Signals, svc: Services = Depends(services), who: Principal = WRITE) -> dict:
    return hma.add_signals(svc, who, name, dict(body.model_extra or {}), body.note)


@router.get("/c/bank/{name}/content/{content_id}", summary="HMA: one banked content (a Safehold entry)")
def get_content(
    name: str,
    content_id: Id,
    include_signals: bool = False,
    include_metadata: bool = True,
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    return hma.get_content(svc, name, content_id, include_signals=include_signals, include_metadata=include_metadata)


@router.put("/c/bank/{name}/content/{content_id}", summary="HMA: enable, disable or annotate a banked content")
def update_content(
    name: str, content_id: Id, body: ContentUpdate, svc: Services = Depends(services), who: Principal = WRITE
) -> dict:
    return hma.update_content(svc, who, name, content_id, disable_until_ts=body.disable_until_ts, note=body.note)


@router.delete("/c/bank/{name}/content/{content_id}", summary="HMA: remove a banked content")
def delete_content(name: str, content_id: Id, svc: Services = Depends(services), who: Principal = WRITE) -> dict:
    return hma.delete_content(svc, who, name, content_id)
