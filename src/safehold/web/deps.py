"""Who is using the console: the session cookie, the CSRF check on every POST, and the permission a page needs.

The cookie ``safehold_session`` holds a random token (HttpOnly, SameSite=Strict, Secure behind HTTPS); the
server keeps only its hash (see auth.sessions). Every POST must carry the session's CSRF token in the form field
``csrf``, and when the browser sends an ``Origin`` header it must be this server's. Routes ask for a permission,
never a role; a refusal is audited (throttled) exactly like an API refusal.

Console routes use :class:`ConsoleRoute`, which turns errors into HTML pages (the API's JSON errors are for
programs) and sends someone who is not signed in to the log-in page.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows, demand
from safehold.auth.users import UserInfo
from safehold.errors import SafeholdError
from safehold.services import Services
from safehold.web.render import page, secure

COOKIE = "safehold_session"


@dataclass(frozen=True)
class Staff:
    """The signed-in member of staff for this request."""

    token: str
    csrf: str
    user: UserInfo
    principal: Principal

    @property
    def label(self) -> str:
        return self.principal.label

    @property
    def role(self) -> str:
        return self.principal.role

    def can(self, permission: Permission) -> bool:
        return allows(self.role, permission)


class LoginRequired(Exception):
    """No live session: GET pages redirect to the log-in page; POSTs too (their form is lost, nothing else)."""


def services(request: Request) -> Services:
    return request.app.state.services


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def origin_of(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or URL (default ports filled in), or None when it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def own_origin(request: Request) -> tuple[str, str, int] | None:
    """This console's origin: ``SAFEHOLD_PUBLIC_URL``'s when set, else the request's own scheme and ``Host``."""
    public = services(request).settings.public_origin
    if public is not None:
        return public[0], public[1].lower(), public[2]
    host = request.headers.get("host", "")
    return origin_of(f"{request.url.scheme}://{host}") if host else None


def same_origin(request: Request) -> bool:
    """True unless the browser says the request comes from another origin (``Origin`` is absent on some
    same-origin requests; it is never forged by a browser). Scheme, host and port are all compared: a page on
    ``http://`` is not the console on ``https://``."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    sent = origin_of(origin)
    return sent is not None and sent == own_origin(request)


def secure_cookies(request: Request) -> bool:
    """Console cookies are ``Secure`` when ``SAFEHOLD_COOKIE_SECURE`` says so; by default when the public URL (or,
    without one, this request) is https."""
    settings = services(request).settings
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    public = settings.public_origin
    return (public[0] if public else request.url.scheme) == "https"


async def check_csrf(request: Request, expected: str) -> None:
    form = await request.form()
    sent = form.get("csrf")
    if not (isinstance(sent, str) and expected and hmac.compare_digest(sent, expected)) or not same_origin(request):
        raise SafeholdError("auth.csrf", "The form is stale or came from another site; reload the page.", status=403)


def staff(permission: Permission | None = None) -> Callable:
    """A dependency: the signed-in staff member, after the CSRF check (POST) and the permission check."""

    async def dependency(request: Request) -> Staff:
        svc = services(request)
        token = request.cookies.get(COOKIE)
        found = await run_in_threadpool(svc.sessions.resolve, token) if token else None
        if found is None:
            raise LoginRequired()
        who = Staff(token=token, csrf=found.csrf_token, user=found.user, principal=found.user.principal())
        request.state.staff = who
        if request.method == "POST":
            await check_csrf(request, who.csrf)
        if permission is not None:
            route = f"{request.method} {request.url.path}"
            await run_in_threadpool(demand, svc.audit, who.role, who.label, permission, route, "use this page")
        if request.method == "GET" and who.can(Permission.CASES_REVIEW) and "/items/" not in request.url.path:
            # Pages (not media fetches) carry the break prompt and the cap notice.
            request.state.wellness_banner = await run_in_threadpool(exposure, svc, who)
        return who

    dependency.__name__ = f"staff_{permission.name.lower() if permission else 'any'}"
    return dependency


def wellness_of(svc: Services, who: Staff) -> dict:
    """The reviewer's effective wellness settings: the admin defaults, tightened by the reviewer's own."""
    return svc.wellness.effective(who.user.wellness or {})


def exposure(svc: Services, who: Staff) -> dict:
    """Today's reveals against the reviewer's cap, and whether a break is due."""
    return svc.wellness.exposure(who.label, who.user.wellness or {})


def back(path: str, done: str) -> RedirectResponse:
    """Post/redirect/get: after a change, show the page again with a fixed notice."""
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}done={done}", status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    target = "/login"
    if request.method == "GET" and safe_next(request.url.path):
        target += "?next=" + quote(request.url.path, safe="/")
    response = RedirectResponse(target, status_code=303)
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/")
    return response


def safe_next(path: str | None) -> bool:
    """Where the log-in page may send someone afterwards: a console page, never another site, and never a media
    URL (opening it would reveal media without a click on Reveal)."""
    return bool(path) and path.startswith("/console") and not path.startswith("//") and "/items/" not in path


class ConsoleRoute(APIRoute):
    """An API route whose errors are pages: SafeholdError, validation errors and HTTP errors render
        ``error.html`` with their status (a path parameter that is not valid, such as an id out of range, is a 404:
    there is no such page); ``LoginRequired`` redirects to the log-in page."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return secure(await handler(request))
            except LoginRequired:
                return login_redirect(request)
            except SafeholdError as exc:
                return error_page(request, exc.status, exc.code, exc.message)
            except RequestValidationError as exc:
                if all(e.get("loc", ("",))[0] == "path" for e in exc.errors()):
                    # /console/cases/abc or an id beyond the database's range: no such page, not a bad form.
                    message = f"Nothing here: {request.url.path} is not a page."
                    return error_page(request, 404, "request.not_found", message)
                fields = ", ".join(str(e.get("loc", ("?",))[-1]) for e in exc.errors())
                return error_page(request, 422, "request.invalid", f"The form is missing or has bad fields: {fields}.")
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code, "request.error", str(exc.detail))

        return run


def error_page(request: Request, status: int, code: str, message: str) -> Response:
    referer = urlsplit(request.headers.get("referer", ""))
    came_from = referer.path if referer.netloc == request.headers.get("host") and referer.path else "/console"
    return page(request, "error.html", status=status, code=code, message=message, came_from=came_from)
