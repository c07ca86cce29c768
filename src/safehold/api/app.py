"""The FastAPI application: routes, error format and the process's background upkeep.

Every error leaves as ``{"error": {"code": "...", "message": "..."}}`` with a stable code, whatever raised it.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from safehold import __version__
from safehold.api.hotpath import SearchHotPath
from safehold.api.routes import (
    actions,
    apikeys,
    audit,
    banks,
    cases,
    conversations,
    evidence,
    reports,
    review,
    scan,
    search,
    system,
    terms,
    text,
    users,
)
from safehold.errors import SafeholdError
from safehold.services import Services
from safehold.web import console

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "request.bad",
    401: "auth.missing_key",
    403: "auth.forbidden",
    404: "request.not_found",
    405: "request.method_not_allowed",
    413: "request.too_large",
    415: "request.unsupported_media_type",
}


def _error(status: int, code: str, message: str, detail: dict | None = None, headers=None) -> JSONResponse:
    body: dict = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def create_app(svc: Services | None = None, *, background: bool = True) -> FastAPI:
    """Build the app. Tests pass their own ``Services``; ``safehold serve`` lets it build one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = app.state.services is None
        if owned:
            app.state.services = Services()
        if background:
            app.state.services.start_background()
        try:
            yield
        finally:
            if owned or background:
                app.state.services.close()

    app = FastAPI(
        title="Safehold",
        version=__version__,
        description="Open-source child-safety infrastructure. Every route but /v1/health needs an API key.",
        lifespan=lifespan,
    )
    app.state.services = svc

    @app.exception_handler(SafeholdError)
    async def _safehold_error(_: Request, exc: SafeholdError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.code, exc.message, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return _error(422, "request.invalid", "The request is not valid.", {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, HTTP_CODES.get(exc.status_code, "request.error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        return _error(500, "server.error", "Internal error; it has been logged.")

    for module in (
        system,
        apikeys,
        banks,
        scan,
        search,
        text,
        terms,
        conversations,
        audit,
        users,
        cases,
        review,
        actions,
        reports,
        evidence,
    ):
        app.include_router(module.router)
    app.include_router(banks.entries_router)
    app.include_router(console.router)
    app.add_middleware(SearchHotPath)
    return app
