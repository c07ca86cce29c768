"""The lookup hot paths: HMA's ``GET /m/lookup`` of a hash and Safehold's ``POST /v1/scan`` of a raw hash, as
plain ASGI.

A platform integrated with HMA looks up every uploaded image's hash, so the cost of one lookup is the platform's
cost per upload. The lookup itself (an index probe) is a small fraction of what
FastAPI adds per request (routing, dependency resolution, query validation, response encoding): on a small
machine that overhead, not the matching, sets the highest rate. This middleware answers the *ordinary* request —
a valid API key whose role has ``scan``, and parameters the route accepts as they are — directly, with the same
service call (:func:`safehold.api.hma.lookup_hash`, the scan route's ``_scan_item``) and the same JSON the
FastAPI route gives. Everything else (no key, a bad or revoked key, a role without ``scan``, a parameter missing,
repeated, unknown to this path or out of bounds, a URL lookup, a Safehold error such as an unknown signal type
or a malformed hash) is handed to the FastAPI app unchanged, so refusals, their audit records and their error
format have one implementation only: the routes in :mod:`safehold.api.routes.hma` and
:mod:`safehold.api.routes.scan`, which also document the API.

An HMA lookup is answered on the event loop, hit or miss: it needs no database (the index knows each entry's
bank, :meth:`~safehold.scanning.service.ScanService.scan_hash_indexed`), and the hop to a thread and back would
cost more than the probe. A scan of a hash runs in the thread pool, as the route's call does: a hit's answer
carries the matched entries' fields, read from the database, and may open a case.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from safehold.api import hma
from safehold.api.deps import authenticate
from safehold.api.hotpath import _bearer, _encode, _replay
from safehold.api.limits import HOT_MAX_BODY, parsed_body
from safehold.api.routes import hma as hma_routes
from safehold.api.routes import scan as scan_routes
from safehold.api.routes.scan import _SCAN_ITEM, HashScan, _scan_item
from safehold.auth.roles import Permission, allows
from safehold.errors import SafeholdError

LOOKUP, SCAN = "/m/lookup", "/v1/scan"
#: The ``GET /m/lookup`` parameters of a hash lookup, and their bounds as the route declares them (min, max
#: length). ``url``, ``content_type``, ``types`` and ``bypass_coinflip`` go the slow way.
PARAMS = {"signal": (1, 100_000), "signal_type": (0, 64), "banks": (0, 8192), "seed": (0, 256)}
#: The longest query string a hash lookup can have (the bounds above, names and separators included).
MAX_QUERY = sum(hi for _, hi in PARAMS.values()) * 3 + 64
_HEADERS = [(b"content-type", b"application/json")]
#: The routes this stands in for, by (path, method): telemetry labels the hot path's answers with their path.
ROUTES: dict[tuple[str, str], APIRoute] = {
    (r.path, m): r
    for r in (*hma_routes.router.routes, *scan_routes.router.routes)
    if isinstance(r, APIRoute) and r.path in (LOOKUP, SCAN)
    for m in r.methods
}


class LookupHotPath:
    """ASGI middleware (added with ``app.add_middleware``): answers ordinary hash lookups itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path") if scope["type"] == "http" else None
        if path == LOOKUP and scope["method"] == "GET":
            answer = await self._lookup(scope)
            if answer is not None:
                await self._send(scope, answer, send)
                return
        elif path == SCAN and scope["method"] == "POST" and _is_json(scope):
            await self._scan(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _lookup(self, scope) -> bytes | None:
        """The JSON answer to an ordinary hash lookup, or None to let the route handle it."""
        raw = scope.get("query_string", b"")
        if len(raw) > MAX_QUERY:
            return None
        try:
            pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, strict_parsing=True, encoding="utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        params = dict(pairs)
        if len(params) != len(pairs) or not params.keys() <= PARAMS.keys():
            return None
        if any(not lo <= len(params[k]) <= hi for k, (lo, hi) in PARAMS.items() if k in params):
            return None
        if not params.get("signal") or not params.get("signal_type"):
            return None
        who = await self._caller(scope)
        if who is None:
            return None
        svc = scope["app"].state.services
        signal_type, signal, banks = params["signal_type"], params["signal"], params.get("banks")
        try:
            result = hma.lookup_hash(svc, signal_type, signal, banks=banks)
        except SafeholdError:
            return None
        return _encode(result)

    async def _scan(self, scope, receive, send) -> None:
        body, more, other = await read_body(receive, HOT_MAX_BODY)
        answer = None if more or other else await self._scan_answer(scope, body)
        if answer is None:  # the route reads the body as if unread (and a client gone away as it went)
            await self.app(scope, _replay(body, receive, more=more, then=other), send)
            return
        await self._send(scope, answer, send)

    async def _scan_answer(self, scope, body: bytes) -> bytes | None:
        """The JSON answer to an ordinary scan of a raw hash, or None to let the route handle it."""
        svc = scope["app"].state.services
        try:
            item = _SCAN_ITEM.validate_python(parsed_body(scope, body, svc.settings.max_json_depth))
        except (ValidationError, SafeholdError, ValueError):
            return None
        if not isinstance(item, HashScan):
            return None
        who = await self._caller(scope)
        if who is None:
            return None
        try:
            return _encode(await run_in_threadpool(_scan_item, svc, who, item))
        except SafeholdError:
            return None

    async def _caller(self, scope):
        """The caller if the request carries a valid key whose role may scan; else None (the route refuses)."""
        svc, token = scope["app"].state.services, _bearer(scope)
        try:
            who = await authenticate(svc, token) if svc is not None and token is not None else None
        except SafeholdError:
            return None
        return who if who is not None and allows(who.role, Permission.SCAN) else None

    async def _send(self, scope, answer: bytes, send) -> None:
        # The route this stands in for, in the scope as the router would record it: telemetry labels by it.
        scope["route"] = ROUTES.get((scope["path"], scope["method"]))
        headers = [*_HEADERS, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


async def read_body(receive, limit: int) -> tuple[bytes, bool, dict | None]:
    """The request body up to just past ``limit`` bytes: (what was read, whether more is to come, the message
    that ended the reading early — the client went away — or None)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True, message
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False):
            return b"".join(chunks), False, None
    return b"".join(chunks), True, None


def _is_json(scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False
