"""Fixtures for actions tests: fast back-off settings, a local webhook receiver, and cases made directly."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from safehold.store.models import Case

REPO = Path(__file__).resolve().parents[2]

_subjects = itertools.count(1)


@pytest.fixture
def settings(tmp_path, database_url):
    """Back-off in hundredths of a second, so retry rounds need no long sleeps."""
    from safehold.config import Settings

    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        webhook_backoff_seconds=0.01,
        webhook_backoff_max_seconds=0.05,
        webhook_max_attempts=5,
        webhook_timeout=5,
        webhook_poll_interval=0.05,
    )


@dataclass
class Received:
    headers: dict
    body: bytes

    @property
    def key(self) -> str:
        return self.headers["safehold-idempotency-key"]

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A platform endpoint on 127.0.0.1. ``respond`` decides each answer's status (it may block)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    respond: Callable[[Received], int] = lambda r: 200
    arrived: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                r = Received({k.lower(): v for k, v in self.headers.items()}, body)
                receiver.requests.append(r)
                receiver.arrived.set()
                status = receiver.respond(r)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender is gone (killed mid-request)
                    pass

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 64  # the default 5 refuses connections when many workers send at once
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/safehold"

    def keys(self) -> list[str]:
        return [r.key for r in self.requests]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def make_case(svc, **fields) -> int:
    """A case row made directly (the case service is not under test here)."""
    n = next(_subjects)
    values = {"subject_key": f"content:c{n}", "content_id": f"c{n}", "account_id": f"a{n}", "source": "hash_match"}
    with svc.db.session() as s:
        case = Case(**{**values, **fields})
        s.add(case)
        s.flush()
        return case.id
