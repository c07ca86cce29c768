"""A local stand-in for an age-estimation provider, to rehearse the assurance callback without a real provider.

Used by the tests and shipped for operators (``safehold age stand-in``)::

    standin = StandIn(secret="…at least 16 characters…", callback_url="http://127.0.0.1:8000/v1/age-assurance/standin/callback")
    url = standin.start("127.0.0.1", 8091)    # served from a thread
    # POST {url}/estimate {"account_id": "kid-1", "age": 14}  → the stand-in "estimates" and calls Safehold back
    standin.stop()

``POST /estimate`` takes ``{"account_id", "age"?, "method"?}``: the estimate is ``age`` when given (the test
parameter), else a deterministic age of 8 to 40 from the account id's SHA-256, so a rehearsal gives the same
answer every time. It then sends Safehold a ``signed_webhook`` callback (:func:`safehold.safety.assurance.
sign_callback`: ``Safehold-Signature`` over the raw body) with confidence ``0.9`` and a fresh reference, and
answers ``{"sent": {…}, "status": <Safehold's status>, "answer": <Safehold's JSON>}``. It binds to 127.0.0.1 by
default; it is a rehearsal tool, not a server to expose.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from safehold.safety.assurance import sign_callback

MAX_BODY = 4096
CONFIDENCE = 0.9
#: ``post(url, body, headers) -> (status, json answer)``: how the stand-in reaches Safehold (httpx by default).
Post = Callable[[str, bytes, dict], tuple[int, object]]


def estimated_age(account_id: str) -> int:
    """The stand-in's "estimate" for an account with no test age: 8 to 40, the same every time."""
    return 8 + hashlib.sha256(account_id.encode()).digest()[0] % 33


def _httpx_post(url: str, body: bytes, headers: dict) -> tuple[int, object]:
    r = httpx.post(url, content=body, headers=headers, timeout=10.0)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


class StandIn:
    def __init__(self, secret: str, callback_url: str, *, post: Post | None = None):
        self.secret = secret
        self.callback_url = callback_url
        self.post = post or _httpx_post
        self.sent: list[dict] = []
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    def estimate(self, account_id: str, age: float | None = None, method: str = "estimation") -> dict:
        """Estimate ``account_id``'s age and call Safehold back with the signed result."""
        result = {
            "account_id": account_id,
            "age": estimated_age(account_id) if age is None else age,
            "method": method,
            "confidence": CONFIDENCE,
            "reference": f"standin-{next(self._ids)}-{hashlib.sha256(account_id.encode()).hexdigest()[:12]}",
        }
        body, headers = sign_callback(self.secret, result)
        status, answer = self.post(self.callback_url, body, headers)
        self.sent.append(result)
        return {"sent": result, "status": status, "answer": answer}

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/estimate":
                    return self._answer(404, {"error": "POST /estimate"})
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY:
                    return self._answer(413 if length else 400, {"error": f"a body of 1 to {MAX_BODY} bytes"})
                try:
                    data = json.loads(self.rfile.read(length))
                    account, age = data["account_id"], data.get("age")
                    if not isinstance(account, str) or not (age is None or isinstance(age, int | float)):
                        raise TypeError
                except (ValueError, KeyError, TypeError):
                    return self._answer(400, {"error": 'send {"account_id": "…", "age": 14 (optional)}'})
                try:
                    out = standin.estimate(account, age, str(data.get("method") or "estimation"))
                except httpx.HTTPError as exc:
                    return self._answer(502, {"error": f"Safehold could not be reached: {exc}"})
                self._answer(200, out)

            def _answer(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args) -> None:  # quiet: the CLI prints what happens
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="age-standin").start()
        return f"http://{host}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
