"""Request dependencies: the services of this process and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, demand
from safehold.errors import SafeholdError
from safehold.services import Services

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sh_…`")


def services(request: Request) -> Services:
    return request.app.state.services


def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise SafeholdError(
            "auth.missing_key", "This route needs an API key: 'Authorization: Bearer sh_…'.", status=401
        )
    return services(request).apikeys.authenticate(credentials.credentials)


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency that lets the request through only if the caller's role grants ``permission``."""

    def check(request: Request, who: Principal = Depends(principal)) -> Principal:
        # Audited, throttled per key and permission (see AuditService.denied): a client stuck in a loop
        # of refusals costs one audit write a minute, not one per request.
        route = f"{request.method} {request.url.path}"
        demand(services(request).audit, who.role, who.label, permission, route)
        return who

    check.__name__ = f"require_{permission.name.lower()}"
    return check
