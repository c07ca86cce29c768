"""False-positive controls: match statistics per entry and per source, the quarantined entries, their release."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.http.params import Id
from safehold.services import Services
from safehold.sharing.quarantine import MAX_DAYS, MAX_LIST

router = APIRouter(prefix="/v1", tags=["quarantine"], route_class=ContractRoute)

READ = Depends(require(Permission.BANKS_READ))
WRITE = require(Permission.BANKS_WRITE)
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days of statistics, today included.")]


@router.get("/entries/{entry_id}/stats", summary="An entry's matches per day, reviewed outcomes and quarantine")
def entry_stats(entry_id: Id, days: Days = 30, svc: Services = Depends(services), _=READ) -> dict:
    return svc.quarantine.entry_stats(entry_id, days)


@router.get("/sharing/stats", summary="Matches, reviewed outcomes and false-positive rate per bank and source")
def source_stats(days: Days = 30, svc: Services = Depends(services), _=READ) -> dict:
    return {"sources": svc.quarantine.source_stats(days)}


@router.get("/quarantine", summary="The quarantined entries, most recent first, each with why")
def quarantined(
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100, svc: Services = Depends(services), _=READ
) -> dict:
    return {"entries": svc.quarantine.quarantined(limit)}


@router.post("/quarantine/{entry_id}/release", summary="Release a quarantined entry (audited; a cool-down follows)")
def release(entry_id: Id, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.quarantine.release(entry_id, who.label)
