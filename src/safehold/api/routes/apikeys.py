"""API keys (admins only). The full key is returned once, at creation."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from safehold.api.contract import ContractRoute
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, Role
from safehold.services import Services

router = APIRouter(prefix="/v1/apikeys", tags=["apikeys"], route_class=ContractRoute)


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    role: Role


def _key(row) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "role": row.role,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked": row.revoked_at is not None,
    }


@router.get("", summary="List API keys (never their secrets)")
def list_keys(svc: Services = Depends(services), _=Depends(require(Permission.APIKEYS_MANAGE))) -> list[dict]:
    return [_key(k) for k in svc.apikeys.list()]


@router.post("", status_code=201, summary="Create an API key; the response holds the key, shown only once")
def create_key(
    body: KeyCreate,
    svc: Services = Depends(services),
    who: Principal = Depends(require(Permission.APIKEYS_MANAGE)),
) -> dict:
    created = svc.apikeys.create(body.name, body.role.value, created_by=who.label)
    return {
        "id": created.id,
        "name": created.name,
        "role": created.role,
        "prefix": created.prefix,
        "key": created.token,
    }


@router.delete("/{prefix}", summary="Revoke an API key by its prefix")
def revoke_key(
    prefix: str, svc: Services = Depends(services), who: Principal = Depends(require(Permission.APIKEYS_MANAGE))
) -> dict:
    return _key(svc.apikeys.revoke(prefix, actor=who.label))
