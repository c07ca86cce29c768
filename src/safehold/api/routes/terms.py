"""Term lists (``/v1/terms``): import a version from CSV, export it, roll back, switch a list on or off.

Every change is applied to this process's detectors before the answer and to every other process's within one
upkeep interval (see :mod:`safehold.rules.terms`). Term lists are detection lists like banks, so they need the
same permissions: ``banks.read`` to read, ``banks.write`` to change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.uploads import read_capped
from safehold.rules.terms import MAX_CSV_BYTES, NAME_PATTERN
from safehold.services import Services

router = APIRouter(prefix="/v1/terms", tags=["terms"], route_class=ContractRoute)
READ = Depends(require(Permission.BANKS_READ))
WRITE = require(Permission.BANKS_WRITE)
#: A list's name in the path: the service's own rule, published (a bad name is 422 ``request.invalid``).
ListName = Annotated[matching(NAME_PATTERN, "a term list name is 1 to 64 lower-case letters, digits and '_'"), Path()]
VERSION_HELP = "Default: the file's '# version:' line, else one more than the highest version."


class Activate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=999_999_999)


class ListUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


@router.get("", summary="Every term list (bundled and stored) and the lists the detectors use now")
def list_terms(svc: Services = Depends(services), _=READ) -> dict:
    return {"lists": svc.terms.lists(), "active": list(svc.terms.current().lists)}


@router.get("/{name}/versions", summary="The imported versions of a list")
def versions(name: ListName, svc: Services = Depends(services), _=READ) -> list[dict]:
    return svc.terms.versions(name)


@router.get(
    "/{name}/export",
    summary="A list as CSV (the active version unless one is named)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def export(
    name: ListName,
    version: int | None = Query(None, ge=1, le=999_999_999),
    svc: Services = Depends(services),
    _=READ,
) -> Response:
    body = svc.terms.export_csv(name, version)
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@router.put("/{name}", summary="Import a new version of a list from CSV and make it active")
async def put(
    name: ListName,
    file: UploadFile = File(..., description="CSV: term,category[,severity,language,source]"),
    version: int = Form(None, ge=1, le=999_999_999, description=VERSION_HELP),
    svc: Services = Depends(services),
    who: Principal = Depends(WRITE),
) -> dict:
    data = await read_capped(file, MAX_CSV_BYTES)
    return await run_in_threadpool(svc.terms.put, name, data, who.label, version=version)


@router.post("/{name}/activate", summary="Make an imported version the active one (roll back or forward)")
def activate(
    name: ListName, body: Activate, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.terms.activate(name, body.version, who.label)


@router.patch("/{name}", summary="Switch a list on or off (a bundled list too)")
def update(
    name: ListName, body: ListUpdate, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.terms.set_enabled(name, body.enabled, who.label)


@router.delete("/{name}", summary="Delete a stored list and its versions (a bundled list of that name returns)")
def delete(name: ListName, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.terms.delete(name, who.label)
