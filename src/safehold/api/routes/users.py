"""Console staff accounts (admins only). Passwords go in and never come out, not even as hashes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from safehold.api.contract import ContractRoute, matching
from safehold.api.deps import require, services
from safehold.auth.apikeys import Principal
from safehold.auth.roles import STAFF_ROLES, Permission
from safehold.auth.users import MAX_PASSWORD, MIN_PASSWORD
from safehold.services import Services

router = APIRouter(prefix="/v1", tags=["users"], route_class=ContractRoute)

MANAGE = Depends(require(Permission.USERS_MANAGE))
# The schema holds what a schema can say (lengths, the name's characters, the roles); the service checks the
# rest and answers with its own codes: user.weak_password for a password that is the username or one character
# repeated, user.exists for a name taken.
Password = Field(
    min_length=MIN_PASSWORD,
    max_length=MAX_PASSWORD,
    description=f"{MIN_PASSWORD} to {MAX_PASSWORD} characters; not the username, not one character repeated.",
)
Username = matching("^[A-Za-z0-9._-]{2,64}$", "a username is 2 to 64 letters, digits, '.', '_' or '-'")
#: The console roles (an API-only role such as ``platform`` has no console account).
StaffRole = Literal[tuple(role.value for role in STAFF_ROLES)]


class UserCreate(BaseModel):
    # The service also takes surrounding blanks and capitals (it lower-cases the name); the API takes the name
    # as it will be stored, so the schema can say what is accepted.
    username: Username = Field(description="Letters, digits, '.', '_' or '-' (2-64).")
    password: str = Password
    role: StaffRole
    display_name: str = Field("", max_length=128)


class UserUpdate(BaseModel):
    role: StaffRole | None = None
    display_name: str | None = Field(None, max_length=128)
    disabled: bool | None = Field(None, description="Disabling ends the user's console sessions at once.")


class PasswordSet(BaseModel):
    password: str = Password


@router.get("/users", summary="List console users")
def list_users(svc: Services = Depends(services), _=MANAGE) -> list[dict]:
    return [u.to_dict() for u in svc.users.list()]


@router.post("/users", status_code=201, summary="Create a console user")
def create_user(body: UserCreate, svc: Services = Depends(services), who: Principal = MANAGE) -> dict:
    return svc.users.create(body.username, body.password, body.role, body.display_name, actor=who.label).to_dict()


@router.get("/users/{username}", summary="One console user")
def get_user(username: str, svc: Services = Depends(services), _=MANAGE) -> dict:
    return svc.users.get(username).to_dict()


@router.patch("/users/{username}", summary="Change a user's role, display name, or disable / enable the account")
def update_user(username: str, body: UserUpdate, svc: Services = Depends(services), who: Principal = MANAGE) -> dict:
    info = svc.users.update(
        username, role=body.role, display_name=body.display_name, disabled=body.disabled, actor=who.label
    )
    return info.to_dict()


@router.put(
    "/users/{username}/password",
    status_code=204,
    summary="Set a user's password; ends their sessions and clears a lock-out",
)
def set_password(username: str, body: PasswordSet, svc: Services = Depends(services), who: Principal = MANAGE) -> None:
    svc.users.set_password(username, body.password, actor=who.label)


@router.delete(
    "/users/{username}/totp",
    summary="Remove a user's TOTP (a lost phone); a role that requires it sets it up again at the next log-in",
)
def reset_totp(username: str, svc: Services = Depends(services), who: Principal = MANAGE) -> dict:
    return svc.users.reset_totp(username, actor=who.label).to_dict()


@router.post("/users/{username}/unlock", summary="Clear a log-in lock-out")
def unlock_user(username: str, svc: Services = Depends(services), who: Principal = MANAGE) -> dict:
    return svc.users.unlock(username, actor=who.label).to_dict()
