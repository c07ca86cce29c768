"""Request limits, enforced in front of everything else (plain ASGI, nothing buffered that need not be).

For every HTTP request, before any route, dependency or authentication runs:

0. **Tarpit** — a caller whose recent requests kept being refused waits before anything else is done, and the
   status of every answer is counted (:mod:`safehold.api.tarpit`); the probes (``/v1/health``, ``/livez``,
   ``/readyz``) are exempt.
1. **Rate** — a token bucket per API key or console session (``SAFEHOLD_RATE_LIMIT`` per second, bursts of
   ``SAFEHOLD_RATE_BURST``), and per client address for requests that carry neither
   (``SAFEHOLD_RATE_LIMIT_ANONYMOUS``). An empty bucket is 429 ``rate.limited`` with ``Retry-After``; the body is
   never read. The probes are exempt, so a flood cannot make a healthy server look dead.
2. **Body size** — a limit per route class (:func:`route_class`): JSON API routes, batch routes, file uploads,
   bank imports, console forms. A caller without a *valid* key or session gets ``SAFEHOLD_MAX_ANONYMOUS_BYTES``
   whatever the route (a key or session is checked here only when the body may be larger than that). A declared
   ``Content-Length`` over the limit is refused at once; a body without one (chunked) is counted as it streams
   and refused the moment it passes the limit: the app is told the client went away and the rest is never read.
   Either way the answer is 413 ``request.too_large``.
3. **JSON bounds** — a JSON body to an API route is parsed once here with :func:`safehold.jsonlimits.loads`:
   deeper than ``SAFEHOLD_MAX_JSON_DEPTH`` (400 ``request.json_too_deep``), ``NaN`` / ``Infinity``
   (400 ``request.invalid_json``) and numbers beyond a double or 64-bit integer (422
   ``request.number_out_of_range``) are refused; a body that is simply not JSON goes on to its route, which
   answers ``request.invalid_json`` with the position as it always has. A body in bounds is left in the scope
   (:func:`parsed_body`), so the hot paths that answer a request themselves do not parse it again.

4. **Uploads at once** — a file upload is the costliest request there is (the multipart parse, the decode, the
   hash), so each key, session or address may have at most ``SAFEHOLD_MAX_UPLOADS_PER_KEY`` of them being served
   (twice the cores by default); one more is 429 ``rate.too_many_uploads`` with ``Retry-After``, its body unread.
   The memory the uploads hold is bounded separately (:mod:`safehold.http.uploads`).

The per-request cost on the search hot path (a small JSON body with a known key) is a header scan, a dict lookup
and a ``json.loads`` of a few dozen bytes.
"""

from __future__ import annotations

import json
import math
import os
import re
import time

from starlette.concurrency import run_in_threadpool

from safehold import jsonlimits
from safehold.api.tarpit import REFUSED, Tarpit
from safehold.errors import SafeholdError
from safehold.http import uploads
from safehold.signals.budget import WorkBudget

#: Fields and multipart framing allowed on top of ``SAFEHOLD_MAX_UPLOAD_BYTES`` in an upload body.
MULTIPART_OVERHEAD = 1024 * 1024
SESSION_COOKIE = b"safehold_session="
EXEMPT = frozenset({"/v1/health", "/livez", "/readyz"})  # probes: never rate-limited nor held up
NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})

_UPLOAD = re.compile(
    r"^/v1/(?:scan|scan/batch|hash|classify|events|media/check|banks/[^/]+/files|terms/[^/]+)$|^/console/text/terms$"
    r"|^/(?:h/hash|m/lookup|c/bank/[^/]+/content)$"  # HMA's upload routes (safehold.api.routes.hma)
)
#: The API's paths: Safehold's own and HMA's (``/m/``, ``/h/``, ``/c/``).
_API = re.compile(r"^/(?:v1|m|h|c)/")
_IMPORT = re.compile(r"^/v1/banks/[^/]+/import$")
_BATCH = re.compile(r"^/v1/(?:scan/batch|conversations/[^/]+/messages)$")
#: A live stream's raw frame (an image body, not JSON): its own size limit, ``SAFEHOLD_LIVE_MAX_FRAME_BYTES``.
_FRAME = re.compile(r"^/v1/live/streams/[^/]+/frames$")


#: Forms strangers post by design (the user-report form): they get the console form limit without a key or
#: session, since 4,000 characters of description in a non-Latin script, URL-encoded, pass the anonymous limit.
PUBLIC_FORMS = frozenset({"/report"})


def route_class(path: str, multipart: bool) -> str:
    """``import``, ``upload``, ``batch``, ``frame``, ``json`` or ``form``: which size limit a request's body gets."""
    if _API.match(path):
        if _IMPORT.match(path):
            return "import"
        if _FRAME.match(path):
            return "frame"
        if multipart and _UPLOAD.match(path):
            return "upload"
        if _BATCH.match(path):
            return "batch"
        return "json"
    if multipart and _UPLOAD.match(path):
        return "upload"
    return "form"


class Buckets:
    """Token buckets by identity, on the event loop (no lock). Bounded: when ``max_entries`` identities are held,
    the ones whose bucket has refilled (idle) are dropped, and if none has, all are (forgetting debts is the
    safe failure: memory stays bounded)."""

    def __init__(self, rate: float, burst: int, max_entries: int = 100_000):
        self.rate, self.burst, self.max_entries = rate, float(burst), max_entries
        self.state: dict[str, list[float]] = {}

    def take(self, ident: str, now: float) -> float:
        """0 if a request may go now (and count it), else the seconds until one may."""
        b = self.state.get(ident)
        if b is None:
            if len(self.state) >= self.max_entries:
                self._prune(now)
            self.state[ident] = [self.burst - 1.0, now]
            return 0.0
        tokens = b[0] + (now - b[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return 0.0
        b[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        self.state = {k: b for k, b in self.state.items() if now - b[1] < full}
        if len(self.state) >= self.max_entries:
            self.state.clear()


class _Limits:
    """The settings this middleware reads, resolved once per settings object."""

    def __init__(self, settings):
        self.settings = settings
        self.sizes = {
            "json": settings.max_json_bytes,
            "batch": settings.max_batch_bytes,
            "upload": settings.max_upload_bytes + MULTIPART_OVERHEAD,
            "import": settings.max_import_bytes,
            "form": settings.max_form_bytes,
            "frame": settings.live_max_frame_bytes,
        }
        self.anonymous = settings.max_anonymous_bytes
        #: Upload requests being served per key, session or address (the event loop is the only writer).
        self.uploading: dict = {}
        self.uploads_per_caller = settings.max_uploads_per_key or 2 * (os.cpu_count() or 1)
        self.uploads = WorkBudget(
            settings.max_upload_bytes_in_flight, wait=settings.media_busy_wait_seconds, what="receiving uploads"
        )
        self.depth = settings.max_json_depth
        self.keys = Buckets(settings.rate_limit, settings.rate_burst) if settings.rate_limit > 0 else None
        self.addresses = (
            Buckets(settings.rate_limit_anonymous, settings.rate_burst_anonymous)
            if settings.rate_limit_anonymous > 0
            else None
        )
        self.tarpit = (
            Tarpit(
                settings.tarpit_free_refusals,
                settings.tarpit_forgive_per_second,
                settings.tarpit_first_delay_seconds,
                settings.tarpit_max_delay_seconds,
                settings.tarpit_max_parked,
            )
            if settings.tarpit_max_delay_seconds > 0
            else None
        )


class RequestLimits:
    """ASGI middleware; add it last (``app.add_middleware``) so it is the outermost of the app's own."""

    def __init__(self, app):
        self.app = app
        self._limits: _Limits | None = None

    def limits(self, settings) -> _Limits:
        if self._limits is None or self._limits.settings is not settings:
            self._limits = _Limits(settings)
        return self._limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc = scope["app"].state.services
        if svc is None:
            await self.app(scope, receive, send)
            return
        lim = self.limits(svc.settings)
        path, method = scope["path"], scope["method"]
        bearer = session = None
        length = -1
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    bearer = token.strip()[:256]
            elif name == b"cookie":
                start = value.find(SESSION_COOKIE)
                if start >= 0:
                    session = value[start + len(SESSION_COOKIE) :].split(b";", 1)[0].strip()[:256] or None
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -2
            elif name == b"content-type":
                content_type = value.lower()

        # Who is asking, for the tarpit, the rate buckets and the upload count: the key, else the session, else the
        # address (a str, so never equal to a key's or session's bytes).
        address = (scope.get("client") or ("?",))[0]
        if bearer is not None:
            caller = bearer
        elif session is not None:
            caller = b"s:" + session
        else:
            caller = address

        # 0. Tarpit: a caller that keeps being refused waits first; every answer's status is counted.
        if lim.tarpit is not None and path not in EXEMPT:
            send = await _tarpitted(lim.tarpit, svc, send, caller, address, bearer, session)
            if send is None:
                return

        # 1. Rate, per key / session, else per client address.
        if path not in EXEMPT:
            buckets = lim.addresses if bearer is None and session is None else lim.keys
            if buckets is not None:
                wait = buckets.take(caller, time.monotonic())
                if wait:
                    await _retry_later(send, "rate.limited", "Too many requests", wait)
                    return

        if method in NO_BODY and length <= 0:
            await self.app(scope, receive, send)
            return
        if length == -2:
            await _answer(send, 400, "request.bad", "The Content-Length header is not a number.")
            return

        # 2. Body size: the route class's limit, or the anonymous one.
        multipart = content_type.startswith(b"multipart/")
        kind = route_class(path, multipart)
        limit = lim.sizes[kind]
        if limit > lim.anonymous and path not in PUBLIC_FORMS and (length < 0 or length > lim.anonymous):
            if not await _credentialed(svc, bearer, session):
                limit = lim.anonymous
        if length > limit:
            await _too_large(send, limit, anonymous=limit == lim.anonymous < lim.sizes[kind])
            return
        counted = _Counted(receive, limit)

        # 3. JSON bounds, for JSON bodies to API routes.
        if kind in ("json", "batch") and not multipart and not content_type.startswith(b"application/x-www-form"):
            body, gone = await counted.read_all()
            if counted.over:
                await _too_large(send, limit, anonymous=limit == lim.anonymous < lim.sizes[kind])
                return
            if body and not gone:
                problem = _json_problem(scope, body, lim.depth)
                if problem is not None:
                    await _answer(send, problem.status, problem.code, problem.message, detail=problem.detail)
                    return
            await self.app(scope, _replay(body, receive, gone), send)
            return

        # 4. Uploads at once per caller: parsing and hashing a file is the costliest thing a caller can ask for, so
        # one key cannot keep every core busy; the refused request costs nothing (its body is never read).
        uploader = None
        if kind == "upload" and lim.uploads_per_caller:
            uploader = caller
            if lim.uploading.get(uploader, 0) >= lim.uploads_per_caller:
                await _answer(
                    send,
                    429,
                    "rate.too_many_uploads",
                    f"At most {lim.uploads_per_caller} uploads at once per key; try again in a moment.",
                    [(b"retry-after", b"1")],
                )
                return
            lim.uploading[uploader] = lim.uploading.get(uploader, 0) + 1

        started = False
        hold = uploads.UploadHold(lim.uploads) if kind == "upload" else None
        token = uploads.current_hold.set(hold)

        async def guarded_send(message):
            nonlocal started
            if counted.over:  # the app is unwinding from the cut-off body: its answer is replaced by the 413
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not counted.over:
                raise
        finally:
            uploads.current_hold.reset(token)
            if hold is not None:
                hold.release()
            if uploader is not None:
                left = lim.uploading.pop(uploader) - 1
                if left:
                    lim.uploading[uploader] = left
        if counted.over and not started:
            await _too_large(send, limit, anonymous=limit == lim.anonymous < lim.sizes[kind])


class _Counted:
    """A ``receive`` that counts body bytes; past ``limit`` it stops reading and reports the client gone."""

    def __init__(self, receive, limit: int):
        self.receive, self.limit = receive, limit
        self.size = 0
        self.over = False

    async def __call__(self):
        if self.over:
            return {"type": "http.disconnect"}
        message = await self.receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                self.over = True
                return {"type": "http.disconnect"}
        return message

    async def read_all(self) -> tuple[bytes, dict | None]:
        """The whole body (or what came before the client left: then the disconnect message too)."""
        chunks = []
        while True:
            message = await self()
            if message["type"] != "http.request":
                return b"".join(chunks), message
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _replay(body: bytes, receive, gone: dict | None):
    queue = [{"type": "http.request", "body": body, "more_body": False}] if gone is None else [gone]

    async def replayed():
        return queue.pop(0) if queue else await receive()

    return replayed


#: Where :class:`RequestLimits` leaves a JSON body it parsed and found in bounds: (body, depth, value).
_PARSED = "safehold.parsed_json"
#: The largest body a hot path answers itself (``safehold.api.hotpath``; a larger one goes to its route): only
#: bodies up to it are left, as a large batch's parsed value would be held for a route that parses the bytes itself.
HOT_MAX_BODY = 256 * 1024


def _json_problem(scope, body: bytes, max_depth: int) -> SafeholdError | None:
    """Why a JSON body is out of bounds, or None (in bounds, or not JSON at all: its route answers that). A body
    in bounds is left in ``scope`` for :func:`parsed_body`."""
    try:
        value = jsonlimits.loads(body, max_depth)
    except SafeholdError as exc:
        if exc.code == "request.invalid_json" and "is not a JSON number" not in exc.message:
            return None  # plain syntax errors: the route's own parse answers them, as it always has
        return exc
    if len(body) <= HOT_MAX_BODY:
        scope[_PARSED] = (body, max_depth, value)
    return None


def parsed_body(scope, body: bytes, max_depth: int) -> object:
    """``jsonlimits.loads(body, max_depth)``, without parsing again a body the request limits parsed already.
    The value is shared with no one else: whoever takes it here may change it."""
    parsed = scope.pop(_PARSED, None)
    if parsed is not None and parsed[1] == max_depth and parsed[0] == body:
        return parsed[2]
    return jsonlimits.loads(body, max_depth)


async def _credentialed(svc, bearer: bytes | None, session: bytes | None) -> bool:
    """Whether the request carries a valid API key or a live console session (checked before reading a body
    that may be larger than an anonymous caller may send)."""
    if bearer is not None:
        try:
            svc.apikeys.authenticate(bearer.decode("latin-1"))  # cached; at most one indexed SELECT
            return True
        except SafeholdError:
            pass
    if session is not None:
        found = await run_in_threadpool(svc.sessions.resolve, session.decode("latin-1"))
        return found is not None
    return False


async def _tarpitted(tarpit: Tarpit, svc, send, caller, address: str, bearer, session):
    """Wait out the caller's delay and return ``send`` wrapped to count the caller's refusals; None when the caller
    was refused at once instead (too many requests already waiting)."""
    credentialed = bearer is not None or session is not None
    now = time.monotonic()
    wait = tarpit.delay(caller, now)
    if not wait and credentialed and tarpit.delay(address, now):
        # A tarpitted address trying a key or session: one it made up does not buy it a clean slate (a valid key
        # from the same address, a different caller, is not delayed: the check is a cached look-up for keys).
        if not await _credentialed(svc, bearer, session):
            wait = tarpit.delay(address, now)

    async def counted(message):
        if message["type"] == "http.response.start" and message["status"] in REFUSED:
            # A key or session that was not valid is no caller of its own: its 401 counts against the address.
            who = address if credentialed and message["status"] == 401 else caller
            tarpit.refused(who, time.monotonic())
        await send(message)

    if wait and not await tarpit.park(wait):
        await _retry_later(
            counted, "rate.throttled", "This caller's requests were refused too often lately", wait, close=True
        )
        return None
    return counted


async def _retry_later(send, code: str, what: str, wait: float, *, close: bool = False) -> None:
    """429 ``code``: ``what``, and when to try again (whole seconds, at least one, also as ``Retry-After``)."""
    seconds = max(1, math.ceil(wait))
    await _answer(
        send, 429, code, f"{what}; try again in {seconds} s.", [(b"retry-after", str(seconds).encode())], close=close
    )


async def _too_large(send, limit: int, *, anonymous: bool) -> None:
    who = " without a valid API key or session" if anonymous else ""
    await _answer(
        send,
        413,
        "request.too_large",
        f"The request body is larger than {limit} bytes, the limit for this route{who}.",
        detail={"limit": limit},
    )


async def _answer(
    send, status: int, code: str, message: str, headers=(), detail: dict | None = None, close: bool = False
) -> None:
    error: dict = {"code": code, "message": message}
    if detail:
        error["detail"] = detail
    body = json.dumps({"error": error}, separators=(",", ":")).encode()
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close") if close or status == 413 else (b"cache-control", b"no-store"),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
