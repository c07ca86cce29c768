"""Hash exchanges: configure the sources that keep banks in sync, see their state, fetch now (docs/sharing.md).

Reading needs ``banks.read``, changing ``banks.write``. Credentials are taken, sealed and never answered back: a
status says only ``has_credentials``. ``POST /v1/exchanges/{name}/fetch`` starts a round on a thread of the server
and answers 202 with the status at once (``fetching: true``); the round's outcome shows in the status
(``last_round``, ``last_error``). A round can take minutes (a first NCMEC fetch reads millions of hashes), longer
than any client should hold a request open.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from safehold.api.contract import ContractRoute, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission
from safehold.outbound.settings import NAME_PATTERN
from safehold.services import Services
from safehold.sharing.service import MAX_EVERY, MIN_EVERY, types

router = APIRouter(prefix="/v1/exchanges", tags=["exchanges"], route_class=ContractRoute)

READ = Depends(require(Permission.BANKS_READ))
WRITE = require(Permission.BANKS_WRITE)
ExchangeName = matching(
    NAME_PATTERN, "an exchange name is 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"
)
Every = Field(None, ge=MIN_EVERY, le=MAX_EVERY, description="Seconds between scheduled fetches.")
SETTINGS_HELP = "The type's settings (GET /v1/exchanges/types lists their fields); replaced whole."
CREDENTIALS_HELP = "The type's credentials; sealed at once, never answered back; replaced whole."


class ExchangeCreate(BaseModel):
    name: ExchangeName
    type: str = Field(max_length=32, description="An exchange type (GET /v1/exchanges/types).")
    bank: str = Field(max_length=64, description="The bank the exchange fills.")
    settings: dict[str, Any] = Field(default_factory=dict, description=SETTINGS_HELP)
    credentials: dict[str, Any] | None = Field(None, description=CREDENTIALS_HELP)
    every_seconds: int | None = Every
    enabled: bool = True


class ExchangeUpdate(BaseModel):
    settings: dict[str, Any] | None = Field(None, description=SETTINGS_HELP)
    credentials: dict[str, Any] | None = Field(None, description=CREDENTIALS_HELP)
    every_seconds: int | None = Every
    enabled: bool | None = None


@router.get("/types", summary="Exchange types with the JSON Schema of their settings and credentials")
def list_types(_=READ) -> list[dict]:
    return types()


@router.get("", summary="Every exchange with its state")
def list_exchanges(svc: Services = Depends(services), _=READ) -> list[dict]:
    return svc.exchanges.list()


@router.post("", status_code=201, summary="Configure an exchange feeding a bank")
def create_exchange(body: ExchangeCreate, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.exchanges.create(
        body.name, body.type, body.bank, body.settings, body.credentials, every_seconds=body.every_seconds,
        enabled=body.enabled, actor=who.label,
    )  # fmt: skip


@router.get("/{name}", summary="An exchange's settings, schedule, totals and last error")
def get_exchange(name: str, svc: Services = Depends(services), _=READ) -> dict:
    return svc.exchanges.get(name)


@router.patch("/{name}", summary="Change an exchange's settings, credentials, period or enabled state")
def update_exchange(
    name: str, body: ExchangeUpdate, svc: Services = Depends(services), who: Principal = Depends(WRITE)
) -> dict:
    return svc.exchanges.update(
        name, settings=body.settings, credentials=body.credentials, every_seconds=body.every_seconds,
        enabled=body.enabled, actor=who.label,
    )  # fmt: skip


@router.delete("/{name}", summary="Forget an exchange (the entries it added stay in its bank)")
def delete_exchange(name: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    svc.exchanges.delete(name, actor=who.label)
    return {"deleted": name}


@router.post("/{name}/fetch", status_code=202, summary="Start a round now; answers at once with the status")
def fetch_exchange(name: str, svc: Services = Depends(services), who: Principal = Depends(WRITE)) -> dict:
    return svc.exchanges.fetch_in_background(name, actor=who.label)
