"""Log-in and log-out.

The log-in form has no session yet, so its CSRF token is a double-submit one: a random value in a short-lived
cookie (HttpOnly, SameSite=Strict, path /login) and the same value in the form. A forged cross-site log-in (which
would sign the victim in as the attacker) fails both that check and the Origin check.

A user with TOTP (or whose role requires it) gets a second page after a right password: the code, or, with no
TOTP yet, the secret to add to an authenticator app and a code from it. Between the two, a signed short-lived
ticket in a cookie (path /login) says whose password was right; the session starts only after the code.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from safehold.auth import totp
from safehold.auth.users import SecondFactorNeeded
from safehold.errors import SafeholdError
from safehold.services import Services
from safehold.web.deps import (
    COOKIE,
    ConsoleRoute,
    Staff,
    back,
    client_ip,
    safe_next,
    same_origin,
    secure_cookies,
    services,
    staff,
)
from safehold.web.render import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

LOGIN_COOKIE = "safehold_login"
#: After a right password, while the TOTP code is asked for: a signed ticket (user id and expiry), path /login.
STEP_COOKIE = "safehold_login_step"


def _login_form(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    step: str | None = None,
    enrol: tuple[str, str] | None = None,
    retry_after: int | None = None,
    next_path: str | None = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    nxt = next_path if next_path is not None else request.query_params.get("next") or ""
    response = page(
        request,
        "login.html",
        status=status,
        csrf=token,
        error=error,
        username=username,
        next=nxt if safe_next(nxt) else "",
        step=step,
        secret=enrol and totp.grouped(enrol[0]),
        uri=enrol and enrol[1],
    )
    secure_cookie = secure_cookies(request)
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict", secure=secure_cookie
    )
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    if step is None:
        response.delete_cookie(STEP_COOKIE, path="/login")
    return response


def _form_ok(request: Request, csrf: str) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    return bool(expected and hmac.compare_digest(csrf, expected)) and same_origin(request)


def _refused(request: Request, exc: SafeholdError, username: str = "") -> Response:
    return _login_form(
        request, status=exc.status, error=exc.message, username=username, retry_after=exc.detail.get("retry_after")
    )


def _signed_in(request: Request, svc: Services, user, next_path: str) -> Response:
    session = svc.sessions.start(user, ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    response = RedirectResponse(next_path if safe_next(next_path) else "/console", status_code=303)
    # A browser-session cookie (no max_age): closing the browser ends it; the server enforces expiry and idling.
    response.set_cookie(
        COOKIE, session.token, path="/", httponly=True, samesite="strict", secure=secure_cookies(request)
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    response.delete_cookie(STEP_COOKIE, path="/login")
    return response


def _second_step(request: Request, svc: Services, user, step: str, next_path: str, *, ticket: str | None = None,
                 error: str | None = None, status: int = 200) -> Response:  # fmt: skip
    """The page asking for the TOTP code (``step`` ``totp``), or showing the secret to add to an app first
    (``enrol``), with the signed ticket that carries the user from the password to this step."""
    enrol = svc.users.enrolment_secret(user.id) if step == "enrol" else None
    response = _login_form(
        request, status=status, error=error, username=user.username, step=step, enrol=enrol, next_path=next_path
    )
    if ticket:
        max_age = int(svc.settings.login_step_minutes * 60)
        response.set_cookie(STEP_COOKIE, ticket, max_age=max_age, path="/login", httponly=True,
                            samesite="strict", secure=secure_cookies(request))  # fmt: skip
    return response


def _expired(request: Request) -> Response:
    """A log-in step whose form token is missing or stale: a fresh form, never a log-in."""
    return _login_form(request, status=403, error="The log-in form expired. Please try again.")


@router.get("/login")
async def login_page(request: Request, svc: Services = Depends(services)) -> Response:
    token = request.cookies.get(COOKIE)
    if token and await run_in_threadpool(svc.sessions.resolve, token):
        return RedirectResponse("/console", status_code=303)
    return _login_form(request)


@router.post("/login")
def login(
    request: Request,
    username: str = Form("", max_length=200),
    password: str = Form("", max_length=2048),
    csrf: str = Form(""),
    next_path: str = Form("", alias="next"),
    svc: Services = Depends(services),
) -> Response:
    if not _form_ok(request, csrf):
        return _expired(request)
    try:
        user = svc.users.authenticate(username, password, ip=client_ip(request))
    except SecondFactorNeeded as need:
        ticket = svc.users.login_ticket(need.user)
        return _second_step(request, svc, need.user, need.step, next_path, ticket=ticket)
    except SafeholdError as exc:
        return _refused(request, exc, username)
    return _signed_in(request, svc, user, next_path)


@router.post("/login/totp")
def login_totp(
    request: Request,
    code: str = Form("", max_length=32),
    csrf: str = Form(""),
    next_path: str = Form("", alias="next"),
    svc: Services = Depends(services),
) -> Response:
    """The second step: the ticket cookie says whose password was right; the code finishes the log-in."""
    if not _form_ok(request, csrf):
        return _expired(request)
    user_id = svc.users.redeem_ticket(request.cookies.get(STEP_COOKIE))
    if user_id is None:
        return _login_form(request, status=401, error="The log-in took too long; please start again.")
    user = svc.users.get_by_id(user_id)
    step = "totp" if user.totp_enrolled else "enrol"
    try:
        if step == "totp":
            user = svc.users.verify_totp(user_id, code, ip=client_ip(request))
        else:
            user = svc.users.enrol_at_login(user_id, code, ip=client_ip(request))
    except SafeholdError as exc:
        if exc.status in (429, 503):
            return _refused(request, exc)
        return _second_step(request, svc, user, step, next_path, error=exc.message, status=exc.status)
    return _signed_in(request, svc, user, next_path)


@router.post("/logout")
def logout(who: Staff = Depends(staff()), svc: Services = Depends(services)) -> Response:
    svc.sessions.end(who.token, actor=who.label)
    response = RedirectResponse("/login?done=logged_out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# ------------------------------------------------------------------ the user's own two-step log-in (me.html)


@router.post("/console/me/totp/start")
def totp_start(who: Staff = Depends(staff()), svc: Services = Depends(services)) -> Response:
    """Show a new secret on the account page (pending until a code from it confirms it)."""
    svc.users.enrolment_secret(who.user.id)
    return RedirectResponse("/console/me?totp=setup#totp-h", status_code=303)


def _with_code(change, *, wrong_code: str, done: str) -> Response:
    """Run a change to the user's own TOTP that needs a current code: a wrong code goes back to ``wrong_code``
    with a notice; any other refusal is the console's error page."""
    try:
        change()
    except SafeholdError as exc:
        if exc.code != "auth.totp_invalid":
            raise
        return back(wrong_code, "totp_bad")
    return back("/console/me", done)


@router.post("/console/me/totp/confirm")
def totp_confirm(
    code: str = Form("", max_length=32), who: Staff = Depends(staff()), svc: Services = Depends(services)
) -> Response:
    change = lambda: svc.users.confirm_enrolment(who.user.id, code, actor=who.label)  # noqa: E731
    return _with_code(change, wrong_code="/console/me?totp=setup", done="totp_on")


@router.post("/console/me/totp/remove")
def totp_remove(
    code: str = Form("", max_length=32), who: Staff = Depends(staff()), svc: Services = Depends(services)
) -> Response:
    change = lambda: svc.users.remove_own_totp(who.user.id, code, actor=who.label)  # noqa: E731
    return _with_code(change, wrong_code="/console/me", done="totp_off")
