"""A minimal webhook receiver: what a platform's endpoint must do, runnable as ``safehold webhook receive``.

It checks the signature over the exact bytes received (refusing with 401 otherwise), answers 204 at once, and
hands the delivery on. A real receiver also remembers ``Safehold-Idempotency-Key`` values it has acted on, since
delivery is at least once; this one only reports repeats.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from safehold.actions.signing import verify

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    valid: bool
    idempotency_key: str | None
    body: dict
    repeat: bool = False


def make_server(host: str, port: int, secret: str, on_delivery: Callable[[Delivery], None]) -> ThreadingHTTPServer:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self.send_response(413 if length else 400)
                self.end_headers()
                return
            raw = self.rfile.read(length)
            valid = verify(secret, self.headers.get("Safehold-Signature", ""), raw)
            key = self.headers.get("Safehold-Idempotency-Key")
            try:
                body = json.loads(raw) if valid else {}
            except ValueError:
                valid, body = False, {}
            self.send_response(204 if valid else 401)
            self.end_headers()
            repeat = bool(valid and key in seen)
            if valid and key:
                seen.add(key)
            on_delivery(Delivery(valid, key, body, repeat))

        def log_message(self, *args) -> None:  # the callback reports; no access log
            pass

    return ThreadingHTTPServer((host, port), Handler)
