"""The plumbing of the local stand-ins for the services Safehold calls out to (the JSON exchanges StopNCII,
ThreatExchange and Tech Against Terrorism; the external classification services of :mod:`safehold.screening`).

:class:`ServedStandIn` (serving from a thread, start/stop, the base URL) and :func:`next_fault` (the injected-fault
queue) are also what NCMEC's XML stand-in (:mod:`safehold.sharing.exchanges.ncmec_standin`) is served and faulted
with.

Each stand-in speaks one service's documented protocol from an in-memory state so tests, benchmarks and operators
can rehearse without the real service. This base serves HTTP from a thread on 127.0.0.1, logs every request, and
injects faults the client must survive: :meth:`JsonStandIn.fail` makes the next requests answer an HTTP status
(a 5xx, 429 with ``Retry-After``, or a 200 with a broken body), :meth:`JsonStandIn.drop` closes the connection
without an answer, :meth:`JsonStandIn.slow` delays the next answers, and :meth:`JsonStandIn.rate_limit` enforces a
request rate like a real API gateway. A subclass implements :meth:`JsonStandIn.route`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

#: Largest request body a stand-in reads.
MAX_REQUEST_BYTES = 1 << 20


@dataclass
class Reply:
    """An answer: ``body`` is JSON-encoded unless it is bytes (sent as is, e.g. a deliberately broken body)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class _Fault:
    reply: Reply | None  # None: drop the connection (unless ``delay``: then answer normally, late)
    times: int
    delay: float = 0.0


class ServedStandIn(ABC):
    """A stand-in served over HTTP from a background thread: start, stop, ``with`` and its base URL."""

    #: Shown in thread names and logs.
    label = "standin"
    #: The path the base URL ends with (a source whose API lives under one, e.g. ``/hashsharing``).
    prefix = ""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class serving this stand-in."""

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        self._server = ThreadingHTTPServer((host, port), self.handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.label, daemon=True)
        self._thread.start()  # a short poll interval: stop() returns quickly
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"


class Fault(Protocol):
    times: int


F = TypeVar("F", bound=Fault)


def next_fault(faults: list[F], lock: threading.RLock) -> F | None:
    """The fault the next request gets, if any: the queue's first, dropped once it has served ``times`` requests."""
    with lock:
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault


class JsonStandIn(ServedStandIn):
    """Base of a JSON stand-in server: request log and injected faults."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of each answer
        self._faults: list[_Fault] = []
        self._rate: tuple[int, float] | None = None  # (requests, per seconds)
        self._window: tuple[float, int] = (0.0, 0)  # (window start, requests in it)
        self._lock = threading.RLock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    def fail(self, status: int = 503, *, times: int = 1, retry_after: int | None = None, body: Any = None) -> None:
        """The next ``times`` requests answer ``status`` (429 with ``retry_after`` for a rate limit) and do nothing."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        reply = Reply(status, body if body is not None else {"error": "injected"}, headers)
        with self._lock:
            self._faults.append(_Fault(reply, times))

    def drop(self, *, times: int = 1) -> None:
        """The next ``times`` requests get no answer: the connection is closed."""
        with self._lock:
            self._faults.append(_Fault(None, times))

    def slow(self, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` requests are answered normally but only after ``seconds`` (a client's timeout)."""
        with self._lock:
            self._faults.append(_Fault(None, times, delay=seconds))

    def rate_limit(self, requests: int | None, per: float = 60.0) -> None:
        """At most ``requests`` per ``per`` seconds (fixed windows); beyond, 429 with the seconds left as
        ``Retry-After``. ``None`` lifts the limit."""
        with self._lock:
            self._rate = None if requests is None else (requests, per)
            self._window = (time.monotonic(), 0)

    def _over_rate(self) -> Reply | None:
        with self._lock:
            if self._rate is None:
                return None
            limit, per = self._rate
            start, count = self._window
            now = time.monotonic()
            if now - start >= per:
                start, count = now, 0
            self._window = (start, count + 1)
            if count < limit:
                return None
            wait = max(1, math.ceil(per - (now - start)))
            return Reply(429, {"error": "rate limit exceeded"}, {"Retry-After": str(wait)})

    @abstractmethod
    def route(self, request: Request) -> Reply:
        """Answer one request (called with the stand-in's lock held)."""

    def answer(self, request: Request) -> Reply | None:
        fault = next_fault(self._faults, self._lock)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)  # outside the lock: other requests are served meanwhile
        elif fault is not None:
            return fault.reply
        if (limited := self._over_rate()) is not None:
            return limited
        with self._lock:
            try:
                return self.route(request)
            except Exception:  # a stand-in never stops serving because of a request
                log.exception("%s: failure answering %s %s", self.label, request.method, request.path)
                return Reply(500, {"error": "stand-in failure"})


def _handler(standin: JsonStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
            log.debug("%s: " + format, standin.label, *args)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._send(Reply(413, {"error": "request too large"}))
                return
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = standin.answer(request)
            if reply is None:
                standin.requests.append((self.command, parts.path, 0))
                self.close_connection = True
                return
            standin.requests.append((self.command, parts.path, reply.status))
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve

    return Handler
