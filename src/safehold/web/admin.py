"""Administration pages: staff users, API keys, hash banks, and run-time settings (wellness defaults, SLA).

Every change goes through the same service call the API and CLI use, with the signed-in user as the actor, so
the audit log reads the same whichever door a change came through. Secrets (a new API key) are shown once, in
the answer to the POST that made them, and never again.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from safehold.auth.roles import STAFF_ROLES, Permission, Role
from safehold.banks.service import BANK_KINDS, ON_MATCH, parse_thresholds
from safehold.cases.priority import BAND_NAMES
from safehold.errors import SafeholdError
from safehold.http.params import Id
from safehold.services import Services
from safehold.signals import registry
from safehold.web.deps import ConsoleRoute, Staff, back, services, staff
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

OnMatch = Literal[ON_MATCH]  # type: ignore[valid-type]
WELLNESS_FLAGS = ("blur", "greyscale", "thumbnails_first", "video_muted", "video_autoplay")

USERS = Permission.USERS_MANAGE
KEYS = Permission.APIKEYS_MANAGE
SETTINGS = Permission.SETTINGS_MANAGE
#: Import jobs listed on the Banks page (every bank's, newest first; the API lists more, per bank).
RECENT_IMPORTS = 20


# ------------------------------------------------------------------------------------------------ users


@router.get("/console/admin/users")
def users(request: Request, who: Staff = Depends(staff(USERS)), svc: Services = Depends(services)) -> Response:
    return page(request, "admin_users.html", users=svc.users.list(), roles=[r.value for r in STAFF_ROLES])


@router.post("/console/admin/users")
def create_user(
    username: str = Form(..., max_length=64),
    password: str = Form(..., max_length=1024),
    role: str = Form(...),
    display_name: str = Form("", max_length=128),
    who: Staff = Depends(staff(USERS)),
    svc: Services = Depends(services),
) -> Response:
    svc.users.create(username, password, role, display_name=display_name, actor=who.label)
    return back("/console/admin/users", "user_created")


@router.post("/console/admin/users/{username}")
def update_user(
    username: str,
    role: str = Form(...),
    display_name: str = Form("", max_length=128),
    disabled: bool = Form(False),
    who: Staff = Depends(staff(USERS)),
    svc: Services = Depends(services),
) -> Response:
    svc.users.update(username, role=role, display_name=display_name, disabled=disabled, actor=who.label)
    return back("/console/admin/users", "user_updated")


@router.post("/console/admin/users/{username}/password")
def set_password(
    username: str,
    password: str = Form(..., max_length=1024),
    who: Staff = Depends(staff(USERS)),
    svc: Services = Depends(services),
) -> Response:
    svc.users.set_password(username, password, actor=who.label)
    return back("/console/admin/users", "password_set")


@router.post("/console/admin/users/{username}/unlock")
def unlock_user(username: str, who: Staff = Depends(staff(USERS)), svc: Services = Depends(services)) -> Response:
    svc.users.unlock(username, actor=who.label)
    return back("/console/admin/users", "unlocked")


@router.post("/console/admin/users/{username}/totp/reset")
def reset_totp(username: str, who: Staff = Depends(staff(USERS)), svc: Services = Depends(services)) -> Response:
    """A lost phone: remove the user's TOTP (audited ``user.totp_reset``). If their role requires it, they set it
    up again right after their password at the next log-in; their open sessions stay (the password did not leak)."""
    svc.users.reset_totp(username, actor=who.label)
    return back("/console/admin/users", "totp_reset")


# --------------------------------------------------------------------------------------------- API keys


def _keys_page(request: Request, svc: Services, created=None) -> Response:
    return page(request, "admin_apikeys.html", keys=svc.apikeys.list(), roles=[r.value for r in Role], created=created)


@router.get("/console/admin/apikeys")
def apikeys(request: Request, who: Staff = Depends(staff(KEYS)), svc: Services = Depends(services)) -> Response:
    return _keys_page(request, svc)


@router.post("/console/admin/apikeys")
def create_apikey(
    request: Request,
    name: str = Form(..., max_length=128),
    role: str = Form(...),
    who: Staff = Depends(staff(KEYS)),
    svc: Services = Depends(services),
) -> Response:
    return _keys_page(request, svc, created=svc.apikeys.create(name, role, created_by=who.label))


@router.post("/console/admin/apikeys/{prefix}/revoke")
def revoke_apikey(prefix: str, who: Staff = Depends(staff(KEYS)), svc: Services = Depends(services)) -> Response:
    svc.apikeys.revoke(prefix, actor=who.label)
    return back("/console/admin/apikeys", "key_revoked")


# ------------------------------------------------------------------------------------------------ banks


@router.get("/console/admin/banks")
def banks(
    request: Request, who: Staff = Depends(staff(Permission.BANKS_READ)), svc: Services = Depends(services)
) -> Response:
    return page(
        request, "admin_banks.html", banks=svc.banks.list(), kinds=BANK_KINDS, on_match=ON_MATCH,
        max_threshold=registry.signal_type("pdq").max_threshold, imports=svc.banks.import_jobs(limit=RECENT_IMPORTS),
    )  # fmt: skip


@router.post("/console/admin/banks")
def create_bank(
    name: str = Form(..., max_length=64),
    kind: str = Form("block"),
    description: str = Form("", max_length=1000),
    pdq_threshold: int = Form(31),
    thresholds: str = Form("", max_length=1000),
    on_match: OnMatch | None = Form(None),
    who: Staff = Depends(staff(Permission.BANKS_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    svc.banks.create(  # on_match unset: the default for the bank's kind
        name, kind=kind, description=description, pdq_threshold=pdq_threshold, thresholds=_other(thresholds),
        on_match=on_match, created_by=who.label,
    )  # fmt: skip
    return back("/console/admin/banks", "bank_created")


@router.post("/console/admin/banks/{name}")
def update_bank(
    name: str,
    description: str = Form("", max_length=1000),
    pdq_threshold: int = Form(...),
    thresholds: str = Form("", max_length=1000),
    on_match: OnMatch = Form(...),
    enabled: bool = Form(False),
    who: Staff = Depends(staff(Permission.BANKS_WRITE)),
    svc: Services = Depends(services),
) -> Response:
    # The form shows every other threshold the bank sets, so what it sends replaces them all: a type removed from
    # the field (or an emptied field) goes back to its default.
    dropped = {t: None for t in svc.banks.get(name).thresholds if t != "pdq"}
    svc.banks.update(
        name, description=description, pdq_threshold=pdq_threshold, thresholds=dropped | _other(thresholds),
        on_match=on_match, enabled=enabled, actor=who.label,
    )  # fmt: skip
    return back("/console/admin/banks", "bank_updated")


# ---------------------------------------------------------------------- false-positive controls (docs/sharing.md)


@router.get("/console/admin/quarantine")
def quarantine(
    request: Request, who: Staff = Depends(staff(Permission.BANKS_READ)), svc: Services = Depends(services)
) -> Response:
    return page(
        request, "admin_quarantine.html", entries=svc.quarantine.quarantined(), sources=svc.quarantine.source_stats(),
        rule=svc.quarantine.rule,
    )  # fmt: skip


@router.post("/console/admin/quarantine/{entry_id}/release")
def release_entry(
    entry_id: Id, who: Staff = Depends(staff(Permission.BANKS_WRITE)), svc: Services = Depends(services)
) -> Response:
    svc.quarantine.release(entry_id, who.label)
    return back("/console/admin/quarantine", "entry_released")


@router.get("/console/admin/entries/{entry_id}")
def entry(
    request: Request,
    entry_id: Id,
    who: Staff = Depends(staff(Permission.BANKS_READ)),
    svc: Services = Depends(services),
) -> Response:
    return page(request, "admin_entry.html", stats=svc.quarantine.entry_stats(entry_id))


def _other(text: str) -> dict[str, int | None]:
    """The "other thresholds" field, ``photodna=1800, tmk=20`` (``TYPE=default`` drops one); bare numbers are
    refused here: the PDQ threshold has its own field."""
    items = [t for t in text.replace(",", " ").split() if t]
    if any("=" not in t for t in items):
        raise SafeholdError("bank.invalid_threshold", "Other thresholds are written TYPE=N, separated by commas.")
    return parse_thresholds(items)[1] or {}


# --------------------------------------------------------------------------------------------- settings


@router.get("/console/admin/settings")
def settings(request: Request, who: Staff = Depends(staff(SETTINGS)), svc: Services = Depends(services)) -> Response:
    return page(
        request,
        "admin_settings.html",
        wellness=svc.wellness.defaults(),
        flags=WELLNESS_FLAGS,
        sla=svc.cases.sla_hours(),
        bands=BAND_NAMES,
    )


@router.post("/console/admin/settings/wellness")
def save_wellness_defaults(
    blur: bool = Form(False),
    greyscale: bool = Form(False),
    thumbnails_first: bool = Form(False),
    video_muted: bool = Form(False),
    video_autoplay: bool = Form(False),
    daily_cap: int = Form(..., ge=0),
    break_every: int = Form(..., ge=1),
    break_minutes: int = Form(..., ge=1),
    who: Staff = Depends(staff(SETTINGS)),
    svc: Services = Depends(services),
) -> Response:
    prefs = {
        "blur": blur,
        "greyscale": greyscale,
        "thumbnails_first": thumbnails_first,
        "video_muted": video_muted,
        "video_autoplay": video_autoplay,
        "daily_cap": daily_cap,
        "break_every": break_every,
        "break_minutes": break_minutes,
    }
    svc.wellness.set_defaults(prefs, actor=who.label)
    return back("/console/admin/settings", "settings_saved")


@router.post("/console/admin/settings/sla")
def save_sla(
    p0: float | None = Form(None, gt=0, alias="P0"),
    p1: float = Form(..., gt=0, alias="P1"),
    p2: float = Form(..., gt=0, alias="P2"),
    p3: float = Form(..., gt=0, alias="P3"),
    p4: float = Form(..., gt=0, alias="P4"),
    who: Staff = Depends(staff(SETTINGS)),
    svc: Services = Depends(services),
) -> Response:
    hours = {"P1": p1, "P2": p2, "P3": p3, "P4": p4} | ({"P0": p0} if p0 is not None else {})
    svc.cases.set_sla_hours(hours, actor=who.label)
    return back("/console/admin/settings", "settings_saved")
