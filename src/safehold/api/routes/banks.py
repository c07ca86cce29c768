"""Banks and their entries: create, configure, fill (raw hash, file upload, bulk import), export."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute, SignalTypeName, matching, whole_number
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.banks.formats import CATEGORY_PATTERN
from safehold.banks.service import BANK_NAME_PATTERN, MAX_IMPORT_JOBS, BankInfo
from safehold.errors import SafeholdError
from safehold.http.params import AfterId, Id
from safehold.http.uploads import CHUNK, read_capped
from safehold.services import Services
from safehold.signals.pdq import PdqSignal

router = APIRouter(prefix="/v1/banks", tags=["banks"], route_class=ContractRoute)
entries_router = APIRouter(prefix="/v1/entries", tags=["entries"], route_class=ContractRoute)

READ = Depends(require(Permission.BANKS_READ))
WRITE = require(Permission.BANKS_WRITE)
FORMATS = {"csv": "text/csv", "list": "text/plain", "ncmec-xml": "application/xml"}
OnMatch = Literal["none", "case", "auto"]
ON_MATCH_HELP = (
    "What a match does beyond the verdict: none, case (open a case for review) or auto (also run auto policies)."
)
#: An entry's category: the service normalises it (``bank.invalid_category`` otherwise); the schema says which.
Category = Field(None, max_length=64, json_schema_extra={"pattern": CATEGORY_PATTERN})
BankName = matching(
    BANK_NAME_PATTERN, "a bank name is 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"
)
#: An allow bank lists known false positives, so a match on it opens nothing: with ``kind: allow`` in the same
#: body, ``on_match`` is ``none`` or left out. The rule in JSON Schema, for the published schema.
ALLOW_OPENS_NOTHING = {
    "if": {"properties": {"kind": {"const": "allow"}}, "required": ["kind"]},
    "then": {"properties": {"on_match": {"enum": ["none", None]}}},
}


class _AllowOpensNothing(BaseModel):
    """The :data:`ALLOW_OPENS_NOTHING` rule of a body with ``kind`` and ``on_match``, checked as the schema says it
    (422 ``request.invalid``). An ``on_match`` sent alone to an existing allow bank is a 409 from the service."""

    model_config = {"json_schema_extra": ALLOW_OPENS_NOTHING}

    @model_validator(mode="after")
    def _allow_opens_nothing(self):
        if self.kind == "allow" and self.on_match not in (None, "none"):
            raise ValueError("an allow bank never opens cases: its on_match is 'none'")
        return self


PDQ_THRESHOLD_HELP = (
    f"The PDQ threshold (bits, 0-{PdqSignal.max_threshold}); the same as thresholds.pdq. "
    f"Default: {PdqSignal.default_threshold}."
)
#: The older single-threshold field, bounded by the PDQ signal type itself (kept for existing clients).
PdqThreshold = Annotated[int | None, Field(ge=0, le=PdqSignal.max_threshold, description=PDQ_THRESHOLD_HELP)]
THRESHOLDS_HELP = (
    'Match threshold by signal type, e.g. {"pdq": 20, "photodna": 1800}, each from 0 to the type\'s maximum '
    "(bank.invalid_threshold); a type not named uses its default threshold."
)


def _bounds_by_type(schema: dict[str, Any]) -> None:
    """Each known signal type's own range (0 to its ``max_threshold``, which the type defines in code)."""
    from safehold.signals import registry

    schema["properties"] = {
        name: {"anyOf": [{"type": "integer", "minimum": 0, "maximum": st.max_threshold}, {"type": "null"}]}
        for name, st in sorted(registry.all_signal_types().items())
    }
    schema["additionalProperties"] = False
    schema.pop("propertyNames", None)


Thresholds = (
    Annotated[dict[SignalTypeName, whole_number(0, 2**31 - 1) | None], Field(json_schema_extra=_bounds_by_type)] | None
)


class BankCreate(_AllowOpensNothing):
    name: BankName
    kind: Literal["block", "allow"] = "block"
    description: str = Field("", max_length=2000)
    pdq_threshold: PdqThreshold = None
    thresholds: Thresholds = Field(None, description=THRESHOLDS_HELP)
    dihedral: bool = False
    on_match: OnMatch | None = Field(None, description=ON_MATCH_HELP + " Default: case for block, none for allow.")


class BankUpdate(_AllowOpensNothing):
    name: BankName | None = None
    kind: Literal["block", "allow"] | None = None
    description: str | None = Field(None, max_length=2000)
    pdq_threshold: PdqThreshold = None
    thresholds: Thresholds = Field(None, description=THRESHOLDS_HELP + " A type set to null goes back to its default.")
    dihedral: bool | None = None
    enabled: bool | None = None
    on_match: OnMatch | None = Field(None, description=ON_MATCH_HELP)


class EntryCreate(BaseModel):
    signal_type: SignalTypeName
    value: str = Field(
        min_length=1,
        max_length=1_000_000,
        description="The hash value. For `url`: the URL itself (canonicalised and hashed exactly as a scan of it "
        "is), or its 64-hex SHA-256.",
    )
    source: str | None = Field(None, max_length=64)
    external_id: str | None = Field(None, max_length=128)
    category: str | None = Category
    note: str | None = Field(None, max_length=10_000)
    metadata: dict = Field(default_factory=dict)


class EntryUpdate(BaseModel):
    enabled: bool | None = None
    note: str | None = Field(None, max_length=10_000)
    category: str | None = Category


@router.get("", summary="List banks with their entry counts")
def list_banks(svc: Services = Depends(services), _=READ) -> list[BankInfo]:
    return svc.banks.list()


@router.post("", status_code=201, summary="Create a bank")
def create_bank(body: BankCreate, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> BankInfo:
    return svc.banks.create(
        body.name,
        kind=body.kind,
        description=body.description,
        pdq_threshold=body.pdq_threshold,
        thresholds=body.thresholds,
        dihedral=body.dihedral,
        on_match=body.on_match,
        created_by=who.label,
    )


@router.get("/{name}", summary="One bank")
def get_bank(name: str, svc: Services = Depends(services), _=READ) -> BankInfo:
    return svc.banks.get(name)


@router.patch("/{name}", summary="Rename or reconfigure a bank (threshold, kind, dihedral, enabled, on_match)")
def update_bank(name: str, body: BankUpdate, svc: Services = Depends(services), who=Depends(WRITE)) -> BankInfo:
    return svc.banks.update(
        name,
        new_name=body.name,
        description=body.description,
        kind=body.kind,
        pdq_threshold=body.pdq_threshold,
        thresholds=body.thresholds,
        dihedral=body.dihedral,
        enabled=body.enabled,
        on_match=body.on_match,
        actor=who.label,
    )


@router.delete("/{name}", summary="Delete a bank and all its entries")
def delete_bank(name: str, svc: Services = Depends(services), who=Depends(WRITE)) -> dict:
    return {"deleted": name, "entries": svc.banks.delete(name, actor=who.label)}


@router.get("/{name}/entries", summary="A page of entries (keyset pagination with after_id)")
def list_entries(
    name: str,
    signal_type: str | None = None,
    after_id: AfterId = 0,
    limit: int = Query(100, ge=1, le=1000),
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    rows = svc.banks.entries(name, signal_type=signal_type, after_id=after_id, limit=limit)
    return {"entries": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None}


@router.post(
    "/{name}/entries", status_code=201, summary="Add one raw hash (or a URL to a URL bank) with its provenance"
)
def add_entry(name: str, body: EntryCreate, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.banks.add_hash(
        name,
        body.signal_type,
        body.value,
        source=body.source,
        external_id=body.external_id,
        category=body.category,
        note=body.note,
        metadata=body.metadata,
        added_by=who.label,
    )


@router.post("/{name}/files", status_code=201, summary="Hash an uploaded image or video and add its hashes")
async def add_file(
    name: str,
    file: UploadFile = File(...),
    category: str | None = Form(None),
    source: str | None = Form(None),
    external_id: str | None = Form(None),
    note: str | None = Form(None),
    svc: Services = Depends(services),
    who: Principal = Depends(WRITE),
) -> dict:
    data = await read_capped(file, svc.settings.max_upload_bytes)
    return await run_in_threadpool(
        svc.banks.add_file,
        name,
        data,
        filename=file.filename,
        category=category,
        source=source,
        external_id=external_id,
        note=note,
        added_by=who.label,
    )


@router.post("/{name}/import", summary="Bulk import a CSV, hash list or NCMEC XML file (all or nothing)")
async def import_file(
    name: str,
    file: UploadFile = File(...),
    format: Literal["auto", "csv", "list", "ncmec-xml"] = Form("auto"),
    signal_type: str | None = Form(None, description="Signal type of a plain hash list"),
    source: str | None = Form(None),
    skip_invalid: bool = Form(False),
    dry_run: bool = Form(False),
    svc: Services = Depends(services),
    who: Principal = Depends(WRITE),
) -> dict:
    # Spool to a temporary file so a multi-gigabyte list is streamed, never held in memory.
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    while chunk := await file.read(CHUNK):
        spool.write(chunk)
    spool.seek(0)
    try:
        report = await run_in_threadpool(
            svc.banks.import_stream,
            name,
            spool,
            fmt=format,
            default_signal_type=signal_type,
            source=source,
            skip_invalid=skip_invalid,
            dry_run=dry_run,
            added_by=who.label,
            filename=file.filename,
        )
    finally:
        spool.close()
    out = report.to_dict()
    if report.invalid and not report.committed and not dry_run:
        raise SafeholdError(
            "import.invalid_rows",
            f"{report.invalid} invalid row(s); nothing was imported. Fix them or set skip_invalid.",
            status=422,
            detail=out,
        )
    return out


@router.get("/{name}/imports", summary="The bank's latest bulk imports, newest first, with their progress and status")
def list_imports(
    name: str,
    limit: int = Query(50, ge=1, le=MAX_IMPORT_JOBS),
    svc: Services = Depends(services),
    _=READ,
) -> dict:
    """Each import job: the file (name, SHA-256, format, options), ``status`` (``adding``, ``withdrawing``,
    ``done``), how far it got (``rows_done`` of ``rows_total``), what it wrote and how often it was resumed. A job
    that is not ``done`` is an import interrupted (or running now): re-running it continues it."""
    svc.banks.get(name)  # 404 for an unknown bank rather than an empty list
    return {"imports": svc.banks.import_jobs(name, limit=limit)}


@router.get(
    "/{name}/export",
    summary="Export a bank as CSV, hash list or NCMEC XML",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in FORMATS.values()}}},
)
def export_bank(
    name: str,
    format: Literal["csv", "list", "ncmec-xml"] = "csv",
    signal_type: str | None = None,
    svc: Services = Depends(services),
    who: Principal = READ,
) -> StreamingResponse:
    svc.banks.get(name)  # 404 before the response starts
    if format == "list" and not signal_type:
        raise SafeholdError("export.signal_type_required", "A plain hash list needs signal_type.")
    buf = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    svc.banks.export(name, buf, fmt=format, signal_type=signal_type, actor=who.label)
    buf.seek(0)
    ext = {"csv": "csv", "list": "txt", "ncmec-xml": "xml"}[format]

    def body():
        with buf:
            while chunk := buf.read(CHUNK):
                yield chunk

    return StreamingResponse(
        body(),
        media_type=FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'},
    )


@entries_router.get("/{entry_id}", summary="One entry")
def get_entry(entry_id: Id, svc: Services = Depends(services), _=READ) -> dict:
    return svc.banks.get_entry(entry_id)


@entries_router.patch("/{entry_id}", summary="Disable/enable an entry or edit its note/category")
def update_entry(entry_id: Id, body: EntryUpdate, svc: Services = Depends(services), who=Depends(WRITE)) -> dict:
    out = None
    if body.enabled is not None:
        out = svc.banks.set_entry_enabled(entry_id, body.enabled, actor=who.label)
    if body.note is not None or body.category is not None:
        out = svc.banks.update_entry(entry_id, note=body.note, category=body.category, actor=who.label)
    return out or svc.banks.get_entry(entry_id)


@entries_router.delete("/{entry_id}", summary="Delete an entry")
def delete_entry(entry_id: Id, svc: Services = Depends(services), who=Depends(WRITE)) -> dict:
    svc.banks.delete_entry(entry_id, actor=who.label)
    return {"deleted": entry_id}
