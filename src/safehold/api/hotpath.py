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

The intake doors — ``POST /v1/conversations/{id}/messages`` (a chat message) and ``POST /v1/events`` with a JSON
event (no file, no ``grooming_conversation``) — are answered here the same way when group commit is on
(docs/throughput.md): the request's work goes to the committer (:mod:`safehold.store.groupcommit`) and the answer
leaves once its batch committed, with no thread held while it waits. A refusal — raised before the work was queued,
or by the work, whose writes are then rolled back — is handed to the FastAPI route, which refuses it again in its
own words (:mod:`safehold.api.routes.conversations`, :mod:`safehold.api.routes.cases`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ValidationError

from safehold.api.deps import authenticate
from safehold.api.limits import HOT_MAX_BODY, parsed_body
from safehold.api.routes import safety
from safehold.api.routes.search import CheckBody, FilterBody, answer_check, answer_filter
from safehold.auth.apikeys import Principal
from safehold.auth.roles import Permission, allows
from safehold.errors import SafeholdError
from safehold.pipeline.events import IDEMPOTENCY_HEADER_PATTERN
from safehold.rules.conversations import MAX_ID
from safehold.store import jsoncodec

_HEADERS = [(b"content-type", b"application/json")]


#: Path → (body model, answer function, the permission the route asks for).
ROUTES: dict[str, tuple[type[BaseModel], Callable, Permission]] = {
    "/v1/search/check": (CheckBody, answer_check, Permission.SCAN),
    "/v1/search/suggestions/filter": (FilterBody, answer_filter, Permission.SCAN),
    "/v1/interactions/check": (safety.InteractionBody, safety.answer_check, Permission.SAFETY_CHECK),
}


#: ``/v1/conversations/{id}/messages`` with the id the route's path parameter takes (no '/', no '%', not blank).
MESSAGES_PATH = re.compile(r"/v1/conversations/([ -$&-.0-~]*[!-$&-.0-~][ -$&-.0-~]*)/messages")
EVENTS_PATH = "/v1/events"
_IDEMPOTENCY_HEADER = re.compile(IDEMPOTENCY_HEADER_PATTERN)
#: Refusals of the committer itself (safehold.store.groupcommit), answered by the hot path.
_COMMITTER_REFUSALS = frozenset(("intake.busy", "intake.closed"))


def template(path: str) -> str | None:
    """The route template of a path answered here (a metrics label: never an id), or None."""
    if path in ROUTES or path == EVENTS_PATH:
        return path
    return "/v1/conversations/{conversation_id}/messages" if MESSAGES_PATH.fullmatch(path) else None


class SearchHotPath:
    """ASGI middleware (added with ``app.add_middleware``): answers ordinary search-guard and intake requests."""

    def __init__(self, app):
        self.app = app

    def _handler(self, scope) -> Callable[[dict, bytes], Awaitable[bytes | SafeholdError | None]] | None:
        """What answers this request here, or None for the FastAPI app."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        path = scope.get("path", "")
        route = ROUTES.get(path)
        if route is not None:
            return functools.partial(self._answer, route=route)
        if path == EVENTS_PATH:
            return _event
        chat = MESSAGES_PATH.fullmatch(path)
        if chat is not None and len(chat.group(1)) <= MAX_ID:
            return functools.partial(_messages, conversation_id=chat.group(1))
        return None

    async def __call__(self, scope, receive, send):
        handler = self._handler(scope)
        if handler is None:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more and len(body) <= HOT_MAX_BODY:  # larger bodies go the slow way (the models cap them anyway)
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it as it would
                await self.app(scope, _replay(body, receive, more=True, then=message), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = None if more else await handler(scope, body)
        if answer is None:
            await self.app(scope, _replay(body, receive, more=more), send)
            return
        status = 200
        headers = list(_HEADERS)
        if isinstance(answer, SafeholdError):  # the app's error format (safehold.app._error)
            status, refused = answer.status, answer
            answer = _encode({"error": refused.to_dict()})
            headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refused.headers.items()]
        headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    @staticmethod
    async def _answer(scope, body: bytes, route: tuple[type[BaseModel], Callable, Permission]) -> bytes | None:
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
        return _encode(result)


async def _intake(scope, permission: Permission) -> tuple[object, Principal] | None:
    """The services and the caller of an intake request that may be answered here: group commit on, a valid key
    whose role has ``permission``; None otherwise."""
    svc = scope["app"].state.services
    token = _bearer(scope)
    if svc is None or token is None or not svc.writes.enabled:
        return None
    try:
        who = await authenticate(svc, token)
    except SafeholdError:
        return None
    return (svc, who) if allows(who.role, permission) else None


async def _messages(scope, body: bytes, conversation_id: str) -> bytes | None:
    """``POST /v1/conversations/{id}/messages``: :meth:`ConversationService.add_messages`, its commit awaited."""
    if (caller := await _intake(scope, Permission.EVENTS_WRITE)) is None:
        return None
    svc, who = caller
    try:
        data = parsed_body(scope, body, svc.settings.max_json_depth)
        if not isinstance(data, dict):
            return None
        key, work = svc.conversations.work(who.label, conversation_id, data)
    except SafeholdError:
        return None
    return await _committed(svc, key, work)


async def _event(scope, body: bytes) -> bytes | None:
    """``POST /v1/events`` with a JSON event: :meth:`EventService.ingest`, its commit awaited."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        if name in (b"idempotency-key", b"content-type"):
            if name in found:  # repeated: the route decides what that means
                return None
            found[name] = value.decode("latin-1")
    if not found.get(b"content-type", "application/json").startswith("application/json"):
        return None  # multipart (a file), or a body the route refuses
    key = found.get(b"idempotency-key")
    if key is not None and not _IDEMPOTENCY_HEADER.fullmatch(key):
        return None
    if (caller := await _intake(scope, Permission.EVENTS_WRITE)) is None:
        return None
    svc, who = caller
    try:
        data = parsed_body(scope, body, svc.settings.max_json_depth)
        if not isinstance(data, dict) or (work := svc.events.work(who, data, key)) is None:
            return None
    except SafeholdError:
        return None
    return await _committed(svc, *work)


async def _committed(svc, key: str, work) -> bytes | SafeholdError | None:
    """The answer once ``work`` committed; the committer's own refusals (``intake.busy``: the queue is full or
    the item waited too long and was shed; ``intake.closed``) are answered here, as they are: handing them to the
    route would queue the work again, for a client that has given up."""
    try:
        result = await svc.writes.run_async(key, work)
    except SafeholdError as exc:
        return exc if exc.code in _COMMITTER_REFUSALS else None
    return _encode(result)


def _encode(result: dict) -> bytes:
    """The answer as the route's JSON (UTF-8, no spaces), with the store's codec: orjson, several times faster."""
    return jsoncodec.dumps_bytes(result)


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
