"""The FastAPI application: the API's routes (``safehold.api``) and the console (``safehold.web``) composed into
one app, with the error format and the process's background upkeep. It sits above both, so neither imports the
other (docs/architecture.md).

Every error from ``/v1`` leaves as ``{"error": {"code": "...", "message": "..."}}`` with a stable code, whatever
raised it: a route's :class:`SafeholdError`, FastAPI's own body parsing (a body that is not JSON gets the same
``request.invalid_json`` as a route's own parse) or the router (no such route). Outside ``/v1`` the console is for
people: a path with no page answers an HTML error page when it is a console path or the client asks for HTML.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from safehold import __version__, logs, metrics
from safehold.api import docs
from safehold.api.hma import error_body, is_hma_path
from safehold.api.hma_hotpath import LookupHotPath
from safehold.api.hotpath import SearchHotPath
from safehold.api.limits import RequestLimits
from safehold.api.routes import (
    actions,
    ages,
    apikeys,
    audit,
    banks,
    cases,
    classifiers,
    conversations,
    evidence,
    exchanges,
    feedback,
    hma,
    live,
    media_check,
    monitoring,
    peer,
    prompts,
    quarantine,
    reports,
    review,
    rules,
    safety,
    scan,
    screening,
    search,
    system,
    terms,
    text,
    transparency,
    transparency_reports,
    user_reports,
    users,
)
from safehold.api.telemetry import Telemetry
from safehold.errors import SafeholdError, invalid_fields, invalid_json
from safehold.runtime import settle_heap, tune_allocator
from safehold.services import Services
from safehold.web import console
from safehold.web.deps import error_page

#: What a request that found the database unreachable answers: 503, retry soon. A platform retries with the same
#: message ids and idempotency keys (bench/faults.py measures it), so a write that did commit is not recorded twice.
STORE_UNAVAILABLE = SafeholdError(
    "store.unavailable",
    "The database is unreachable or busy for a moment; retry the request (same ids and idempotency keys).",
    status=503,
    headers={"Retry-After": "1"},
)
#: What a write answers when the database cannot store anything more until an operator acts: its disk is full or
#: it is read-only (a SQLite file or directory without write permission, a PostgreSQL standby or read-only
#: transaction). Still a 503 (the request was not recorded; retrying later is safe), but a longer Retry-After and
#: an error in the log, not a warning: this does not pass by itself.
STORE_FULL = SafeholdError(
    "store.unwritable",
    "The database cannot store anything now (its disk is full or it is read-only); an operator has been told. "
    "Retry later with the same ids and idempotency keys.",
    status=503,
    headers={"Retry-After": "60"},
)
#: How the drivers say "full" or "read-only": SQLSTATE classes 53 (insufficient resources: disk full, out of
#: memory) and 25006 (read-only transaction) on PostgreSQL, SQLite's SQLITE_FULL / SQLITE_READONLY messages.
_UNWRITABLE_SQLSTATES = ("53100", "25006")
_UNWRITABLE_MESSAGES = ("database or disk is full", "attempt to write a readonly database", "disk i/o error")

log = logging.getLogger(__name__)


def store_error(exc: OperationalError) -> SafeholdError:
    """The answer to a database error: :data:`STORE_FULL` when the store cannot write until someone acts, else
    :data:`STORE_UNAVAILABLE` (a restart, a failover, a lock held past its timeout: it passes)."""
    orig = exc.orig or exc
    if getattr(orig, "sqlstate", None) in _UNWRITABLE_SQLSTATES:
        return STORE_FULL
    message = str(orig).lower()
    return STORE_FULL if any(m in message for m in _UNWRITABLE_MESSAGES) else STORE_UNAVAILABLE


HTTP_CODES = {
    400: "request.bad",
    401: "auth.missing_key",
    403: "auth.forbidden",
    404: "request.not_found",
    405: "request.method_not_allowed",
    413: "request.too_large",
    415: "request.unsupported_media_type",
}


def _error(
    status: int, code: str, message: str, detail: dict | None = None, headers=None, *, path: str = ""
) -> JSONResponse:
    """The error body; on HMA's paths with HMA's ``message`` beside it (:func:`safehold.api.hma.error_body`)."""
    if is_hma_path(path):
        return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)
    body: dict = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def wants_page(request: Request) -> bool:
    """Whether an error outside a route's own handling goes to a person (an HTML page) rather than a program:
    never under ``/v1`` or HMA's paths; always on console paths; elsewhere when the client asks for HTML (a browser)."""
    path = request.url.path
    if path == "/v1" or path.startswith("/v1/") or is_hma_path(path):
        return False
    return path.startswith("/console") or "text/html" in request.headers.get("accept", "")


def create_app(svc: Services | None = None, *, background: bool = True, serving: bool = False) -> FastAPI:
    """Build the app. Tests pass their own ``Services``; ``safehold serve`` lets it build one. ``serving``: the app
    of a server process, which at start-up builds every route's request handling and then settles its heap
    (:func:`safehold.runtime.settle_heap`): a process's whole life, where tests make many apps."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = app.state.services is None
        if owned:
            app.state.services = Services()
        if background:
            app.state.services.start_background()
        if serving:
            await _warm_router(app)
            settle_heap()
        try:
            yield
        finally:
            if owned or background:
                app.state.services.close()
            metrics.process_stopped()

    app = FastAPI(
        title="Safehold",
        version=__version__,
        description="Open-source child-safety infrastructure. Every route but /v1/health, /livez and /readyz needs an "
        "API key.",
        lifespan=lifespan,
        docs_url=None,  # /docs is safehold.api.docs: Swagger UI from the package, not a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry hooks off: Safehold's metrics and request ids are safehold.api.telemetry's,
        # and with them on FastAPI looks up three OTEL_* environment variables on every request (a few percent of
        # the CPU of a chat message on the hot path).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = svc

    @app.exception_handler(SafeholdError)
    async def _safehold_error(request: Request, exc: SafeholdError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers.update(getattr(exc, "headers", None) or {})  # e.g. Retry-After on 429 / 503
        return _error(exc.status, exc.code, exc.message, exc.detail, headers or None, path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        for e in exc.errors():
            if e.get("type") == "json_invalid":  # FastAPI parsed the body: answer as a route's own parse does
                loc = e.get("loc", ())
                position = loc[-1] if loc and isinstance(loc[-1], int) else 0
                return await _safehold_error(request, invalid_json(e.get("ctx", {}).get("error", ""), position))
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return await _safehold_error(request, invalid_fields(errors, "the request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = HTTP_CODES.get(exc.status_code, "request.error")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # the router's: no route at this path
            message = f"Nothing here: {request.url.path} is not a page or an API route."
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # the router names the first route at this path only: name them all
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        if wants_page(request):
            page = error_page(request, exc.status_code, code, message)
            page.headers.update(headers or {})
            return page
        return _error(exc.status_code, code, message, headers=headers, path=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        if isinstance(exc, OperationalError):  # the database is restarting or failing over, stayed locked, or full
            answer = store_error(exc)
            level = logging.ERROR if answer is STORE_FULL else logging.WARNING
            log.log(level, "store %s: %s", answer.code, str(exc.orig or exc).partition("\n")[0][:200])
            return await _safehold_error(request, answer)
        log.exception("unhandled error")
        return _error(500, "server.error", "Internal error; it has been logged.", path=request.url.path)

    for module in (
        system,
        apikeys,
        banks,
        scan,
        search,
        text,
        terms,
        rules,
        conversations,
        live,
        audit,
        users,
        cases,
        review,
        actions,
        reports,
        evidence,
        quarantine,
        feedback,
        hma,
        exchanges,
        peer,
        classifiers,
        media_check,
        prompts,
        screening,
        ages,
        safety,
        transparency_reports,
        transparency,
        user_reports,
        monitoring,
    ):
        app.include_router(module.router)
    app.include_router(banks.entries_router)
    app.include_router(docs.router)
    app.include_router(console.router)
    app.add_middleware(SearchHotPath)
    app.add_middleware(LookupHotPath)  # HMA's GET /m/lookup of a hash, POST /v1/scan of a hash
    app.add_middleware(RequestLimits)  # before the hot path and every route
    app.add_middleware(Telemetry)  # added last: outermost, so every answer (refusals too) is counted and has an id
    return app


async def _warm_router(app: FastAPI) -> None:
    """Have FastAPI build every route's request handling now. It does so lazily, on the first request that walks
    past a route (the first requests of a new process would wait most of a second of CPU), and what it builds
    lives as long as the process: built before :func:`settle_heap`, it is settled with the rest. A path no route
    answers walks past them all; it goes to the router alone, so no middleware counts or logs it."""
    path = "/.safehold-warm-up"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": [],
             "client": None, "server": None, "state": {}}  # fmt: skip

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    await app.router(scope, receive, send)


def process_app() -> FastAPI:
    """The app of one of the API processes of ``safehold serve --workers N`` (uvicorn imports it by name in each
    spawned process). The store was created and migrated, and the index snapshot written, by ``serve`` before the
    processes started: each opens the store as it is and loads the index from the snapshot."""
    import threading

    tune_allocator()  # before any thread starts, as serve does for one process
    logs.configure(logging.WARNING, logs.log_format())
    svc = Services(create=False)
    threading.Thread(target=svc.scans.isolation.start, name="fork-server", daemon=True).start()
    return create_app(svc, serving=True)


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of a 405: every method some route at this path answers (routers included in
    routers are walked: FastAPI nests them)."""
    path, methods = request.url.path, set()
    stack = list(request.app.router.routes)
    while stack:
        route = stack.pop()
        inner = getattr(route, "original_router", None)
        if inner is not None:
            stack.extend(inner.routes)
        elif getattr(route, "methods", None) and route.path_regex.match(path):
            methods |= set(route.methods)
    return ", ".join(sorted(methods))
