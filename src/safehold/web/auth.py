"""Log-in and log-out.

The log-in form has no session yet, so its CSRF token is a double-submit one: a random value in a short-lived
cookie (HttpOnly, SameSite=Strict, path /login) and the same value in the form. A forged cross-site log-in (which
would sign the victim in as the attacker) fails both that check and the Origin check.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from safehold.errors import SafeholdError
from safehold.services import Services
from safehold.web.deps import (
    COOKIE,
    ConsoleRoute,
    Staff,
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


def _login_form(request: Request, *, status: int = 200, error: str | None = None, username: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    nxt = request.query_params.get("next") or ""
    response = page(
        request,
        "login.html",
        status=status,
        csrf=token,
        error=error,
        username=username,
        next=nxt if safe_next(nxt) else "",
    )
    secure_cookie = secure_cookies(request)
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict", secure=secure_cookie
    )
    return response


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
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not (expected and hmac.compare_digest(csrf, expected)) or not same_origin(request):
        return _login_form(request, status=403, error="The log-in form expired. Please try again.")
    try:
        user = svc.users.authenticate(username, password, ip=client_ip(request))
    except SafeholdError as exc:
        return _login_form(request, status=exc.status, error=exc.message, username=username)
    session = svc.sessions.start(user, ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    response = RedirectResponse(next_path if safe_next(next_path) else "/console", status_code=303)
    # A browser-session cookie (no max_age): closing the browser ends it; the server enforces expiry and idling.
    response.set_cookie(
        COOKIE, session.token, path="/", httponly=True, samesite="strict", secure=secure_cookies(request)
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(who: Staff = Depends(staff()), svc: Services = Depends(services)) -> Response:
    svc.sessions.end(who.token, actor=who.label)
    response = RedirectResponse("/login?done=logged_out", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
