"""Classifiers of new material: which run, their policy and thresholds, their reviewed precision, and scoring an
image without recording anything (docs/classifiers.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.api.multipart import read_upload_form
from safehold.api.routes.scan import MULTIPART_FILE, is_multipart, one_upload
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.banks.formats import CATEGORY_PATTERN
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


# ---------------------------------------------------------------- policy and precision (docs/classifiers.md)

ClassifierName = Annotated[str, Path(pattern="^[a-z][a-z0-9_]{0,63}$", description="The classifier's name.")]


class PolicyIn(BaseModel):
    """The settings to change; a setting sent as ``null`` goes back to the classifier's default."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"minProperties": 1})
    threshold: float | None = Field(None, gt=0, le=1, description="A score at or above it is a hit.")
    needs_age_signal: bool | None = Field(None, description="A hit opens a case only with an age signal.")
    alone: Literal["ignore", "case"] | None = Field(
        None, description="What a hit that needs an age signal and has none becomes."
    )
    auto_action: bool | None = Field(None, description="Run the automatic action policies for hits (audited).")
    category: str | None = Field(
        None,
        max_length=64,
        description="The case category of a hit with an age signal (default csam): A1, A2, B1, B2 or a slug.",
        json_schema_extra={"pattern": CATEGORY_PATTERN},  # checked by the service, with its own message
    )


@router.get("/classifiers", summary="The enabled classifiers, each with its policy in force and its defaults")
def list_classifiers(svc: Services = Depends(services), _=Depends(require(Permission.STATS_READ))) -> dict:
    return {"classifiers": svc.classifier_policies.list()}


@router.put("/classifiers/{name}/policy", summary="Change a classifier's policy (admins; audited)")
def set_policy(
    name: ClassifierName,
    body: PolicyIn,
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.SETTINGS_MANAGE)),
) -> dict:
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    return svc.classifier_policies.change(name, who.label, changes)


@router.get("/classifiers/{name}/precision", summary="Reviewed hits and precision per label and threshold")
def precision(
    name: ClassifierName, svc: Services = Depends(services), _=Depends(require(Permission.STATS_READ))
) -> dict:
    return svc.classifier_policies.precision(name)
