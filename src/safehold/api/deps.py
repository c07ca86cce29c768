"""Request dependencies: the services of this process and the authenticated caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows, demand
from safehold.errors import SafeholdError
from safehold.services import Services

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sh_…`")


async def services(request: Request) -> Services:
    # async: FastAPI runs a sync dependency in the thread pool, a hop that costs more than this whole function.
    return request.app.state.services


async def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    """The caller. No ``Authorization`` header is a missing key; a header without the ``Bearer`` scheme (the key
    pasted alone, ``Token …``) is ``auth.bad_scheme``, so the fix the message gives is the one that is needed."""
    if credentials is None or not credentials.credentials:
        if request.headers.get("authorization", "").strip():
            raise SafeholdError("auth.bad_scheme", "Send the key as `Authorization: Bearer <key>`.", status=401)
        raise SafeholdError(
            "auth.missing_key", "This route needs an API key: send it as `Authorization: Bearer <key>`.", status=401
        )
    return await authenticate(request.app.state.services, credentials.credentials)


async def authenticate(svc: Services, token: str) -> Principal:
    """The key's principal (or 401 ``auth.invalid_key``). The check runs on the event loop (read-only, one
    indexed SELECT at most); the once-a-minute last-used write goes to a worker thread and the request does not
    wait for it (it may wait on SQLite's write lock, and it is only a hint: :meth:`ApiKeyService.touch`)."""
    who, stale = svc.apikeys.authenticate(token)
    if stale:
        asyncio.get_running_loop().run_in_executor(None, svc.apikeys.touch, who.key_prefix)
    return who


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency that lets the request through only if the caller's role grants ``permission``."""
    return require_any(permission)


def require_any(*permissions: Permission) -> Callable[..., Principal]:
    """A dependency that lets the request through if the caller's role grants any of ``permissions`` (a
    refusal is audited under the first)."""

    async def check(request: Request, who: Principal = Depends(principal)) -> Principal:
        # The common case (allowed) is a set lookup, done on the event loop. A refusal is audited, throttled
        # per key and permission (see AuditService.denied): a client stuck in a loop of refusals costs one
        # audit write a minute, not one per request; that write runs in the thread pool.
        if not any(allows(who.role, p) for p in permissions):
            route = f"{request.method} {request.url.path}"
            audit = request.app.state.services.audit
            await run_in_threadpool(demand, audit, who.role, who.label, permissions[0], route)
        return who

    check.__name__ = "require_" + "_or_".join(p.name.lower() for p in permissions)
    return check
