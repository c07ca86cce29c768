"""The hot paths: ``POST /v1/search/check``, ``/v1/search/suggestions/filter`` and ``/v1/interactions/check``
(the contact policy) as plain ASGI.

A search guard sits in front of every query and every autocomplete keystroke, and the contact check in front of
every message, so their cost per request is the platform's. The checks themselves take microseconds; FastAPI's
routing, dependency resolution and response encoding take about a millisecond more per request on a small
machine, which at 500 requests/s is most of a core. This middleware answers the *ordinary* request — a valid API
key whose role has the route's permission, and a body the route's own model accepts — directly, with the same
service call and the same JSON the FastAPI route gives. Everything else (no key, a bad or revoked key, a role
without the permission, malformed JSON, a body the model refuses, an oversized body) is handed to the FastAPI app
unchanged, body included, so refusals, their audit records and their error format have one implementation only:
the routes in :mod:`safehold.api.routes.search` and :mod:`safehold.api.routes.safety`, which also document the API.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from safehold.api.deps import authenticate
from safehold.api.routes import safety
from safehold.api.routes.search import CheckBody, FilterBody, answer_check, answer_filter
from safehold.auth.roles import Permission, allows
from safehold.errors import SafeholdError

#: Larger bodies go the slow way (the models cap a query at 1,000 and a batch at 100 suggestions anyway).
MAX_BODY = 256 * 1024
_HEADERS = [(b"content-type", b"application/json")]


#: Path → (body model, answer function, the permission the route asks for).
ROUTES: dict[str, tuple[type[BaseModel], Callable, Permission]] = {
    "/v1/search/check": (CheckBody, answer_check, Permission.SCAN),
    "/v1/search/suggestions/filter": (FilterBody, answer_filter, Permission.SCAN),
    "/v1/interactions/check": (safety.InteractionBody, safety.answer_check, Permission.SAFETY_CHECK),
}


class SearchHotPath:
    """ASGI middleware (added with ``app.add_middleware``): answers ordinary search-guard requests itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        route = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= MAX_BODY:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it as it would
                await self.app(scope, _replay(body, receive, more=True, then=message), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = None if more else await self._answer(scope, route, body)
        if answer is None:
            await self.app(scope, _replay(body, receive, more=more), send)
            return
        headers = [*_HEADERS, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope, route: tuple[type[BaseModel], Callable, Permission], body: bytes) -> bytes | None:
        """The JSON answer to an ordinary request, or None to let the FastAPI route handle it."""
        svc = scope["app"].state.services
        token = _bearer(scope)
        if svc is None or token is None:
            return None
        try:
            who = await authenticate(svc, token)
            model, handle, permission = route
            if not allows(who.role, permission):
                return None
            result = handle(svc, model.model_validate_json(body))
            if inspect.isawaitable(result):  # the contact check: it hands database work to a thread itself
                result = await result
        except (SafeholdError, ValidationError, ValueError):
            return None
        return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()


def _bearer(scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _replay(body: bytes, receive, *, more: bool, then: dict | None = None):
    """A ``receive`` that hands the app the body already read, as if unread, then whatever comes next."""
    queue = [{"type": "http.request", "body": body, "more_body": more}]
    if then is not None:
        queue.append(then)

    async def replayed():
        return queue.pop(0) if queue else await receive()

    return replayed
