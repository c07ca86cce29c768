"""External classification services: configure the services images are sent to off the hash-matching path, see
their state and their queue, test one (docs/classifiers.md, "External classification services").

Reading needs ``stats.read``, changing ``settings.manage``. Credentials are taken, sealed and never answered back:
a status says only ``has_credentials``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from safehold.api.contract import ContractRoute, error_responses, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.outbound.settings import NAME_PATTERN
from safehold.screening.service import types
from safehold.services import Services

router = APIRouter(prefix="/v1/screening", tags=["screening"], route_class=ContractRoute)

READ = Depends(require(Permission.STATS_READ))
WRITE = require(Permission.SETTINGS_MANAGE)
ServiceName = matching(
    NAME_PATTERN,
    "a screening service name is 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit",
)
SETTINGS_HELP = "The type's settings (GET /v1/screening/types lists their fields); replaced whole."
CREDENTIALS_HELP = "The type's credentials; sealed at once, never answered back; replaced whole."
Threshold = Field(None, gt=0, le=1, description="A score at or above it opens a case for review (default: the type's).")


class ServiceCreate(BaseModel):
    name: ServiceName
    type: str = Field(max_length=32, description="A service type (GET /v1/screening/types).")
    settings: dict[str, Any] = Field(default_factory=dict, description=SETTINGS_HELP)
    credentials: dict[str, Any] | None = Field(None, description=CREDENTIALS_HELP)
    threshold: float | None = Threshold
    enabled: bool = True


class ServiceUpdate(BaseModel):
    settings: dict[str, Any] | None = Field(None, description=SETTINGS_HELP)
    credentials: dict[str, Any] | None = Field(None, description=CREDENTIALS_HELP)
    threshold: float | None = Threshold
    default_threshold: bool = Field(False, description="Go back to the type's own threshold.")
    enabled: bool | None = None


@router.get("/types", summary="Service types with their labels and the JSON Schema of their settings")
def list_types(_=READ) -> list[dict]:
    return types()


@router.get("/queue", summary="The queue of images waiting for the services: jobs, bytes and bounds")
def queue_status(svc: Services = Depends(services), _=READ) -> dict:
    return svc.screening.queue()


@router.get("/services", summary="Every configured service with its state, counters and queue")
def list_services(svc: Services = Depends(services), _=READ) -> list[dict]:
    return svc.screening.list()


@router.post("/services", status_code=201, summary="Configure a service")
def create_service(body: ServiceCreate, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.screening.create(
        body.name, body.type, body.settings, body.credentials, threshold=body.threshold, enabled=body.enabled,
        actor=who.label,
    )  # fmt: skip


@router.get("/services/{name}", summary="A service's settings, threshold, counters, queue and last error")
def get_service(name: str, svc: Services = Depends(services), _=READ) -> dict:
    return svc.screening.get(name)


@router.patch("/services/{name}", summary="Change a service's settings, credentials, threshold or enabled state")
def update_service(
    name: str, body: ServiceUpdate, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.screening.update(
        name, settings=body.settings, credentials=body.credentials, threshold=body.threshold,
        clear_threshold=body.default_threshold, enabled=body.enabled, actor=who.label,
    )  # fmt: skip


@router.post("/services/{name}/enable", summary="Queue images for this service again")
def enable_service(name: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.screening.enable(name, actor=who.label)


@router.post("/services/{name}/disable", summary="Queue no more images for it; its queued jobs wait")
def disable_service(name: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.screening.disable(name, actor=who.label)


@router.delete("/services/{name}", summary="Forget a service and its queued jobs (the cases it opened stay)")
def delete_service(name: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    svc.screening.delete(name, actor=who.label)
    return {"deleted": name}


@router.post(
    "/services/{name}/test",
    summary="Call the service once with a generated image (nobody's media)",
    responses=error_responses(502),
)
def test_service(name: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.screening.test(name, actor=who.label)
