"""A server killed with SIGKILL mid-stream loses no acknowledged chat message or event, and a client that re-sends
what was not acknowledged (and some of what was) counts nothing twice — group commit's promises, on a real
``safehold serve`` on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from safehold.store.models import Conversation, ConversationMessage, IngestedEvent

pytestmark = pytest.mark.slow
ITEMS = 400
CONVERSATIONS = 4


def _serve(settings) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "SAFEHOLD_HOME": str(settings.home),
        "SAFEHOLD_DATABASE_URL": settings.database_url,
        "SAFEHOLD_TARPIT_MAX_DELAY_SECONDS": "0",
        "SAFEHOLD_GROUP_COMMIT_MS": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "safehold", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start")


def _send(base: str, token: str, i: int) -> bool:
    """Item ``i``: a chat message (even) or an event (odd); True when acknowledged (200)."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if i % 2 == 0:
            url = f"{base}/v1/conversations/c{i % CONVERSATIONS}/messages"
            r = httpx.post(url, json={"id": f"m{i}", "author": "a", "text": f"hello {i}"}, headers=headers, timeout=10)
        else:
            signals = [{"source": "user_report", "confidence": 0.5}]
            body = {"type": "content", "content": {"id": f"post-{i}"}, "signals": signals}
            r = httpx.post(f"{base}/v1/events", json=body, headers={**headers, "Idempotency-Key": f"e{i}"}, timeout=10)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def test_sigkill_loses_no_acknowledged_item_and_counts_none_twice(svc, settings):
    token = svc.apikeys.create("crash", "platform").token
    proc, base = _serve(settings)
    acked: set[int] = set()
    lock = threading.Lock()

    def one(i: int) -> None:
        if _send(base, token, i):
            with lock:
                acked.add(i)

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, i) for i in range(ITEMS)]
            deadline = time.monotonic() + 60
            while len(acked) < ITEMS // 4 and time.monotonic() < deadline:  # mid-stream
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            for f in futures:
                f.result()
        proc.wait(timeout=30)
        assert 0 < len(acked) < ITEMS
        proc, base = _serve(settings)
        retried = sorted(acked)[:: max(1, len(acked) // 20)]  # a client's retries of acknowledged items
        again = [i for i in range(ITEMS) if i not in acked] + retried
        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(lambda i: _send(base, token, i), again))
    finally:
        proc.kill()
        proc.wait(timeout=30)

    with svc.db.session() as s:
        stored = set(s.scalars(select(ConversationMessage.message_id)))
        counted = s.scalar(select(func.sum(Conversation.messages)))
        rows = s.scalar(select(func.count()).select_from(ConversationMessage))
        keys = {k.rsplit(":", 1)[1] for k in s.scalars(select(IngestedEvent.key))}
    messages = {f"m{i}" for i in range(0, ITEMS, 2)}
    events = {f"e{i}" for i in range(1, ITEMS, 2)}
    assert stored == messages and rows == len(messages) == counted  # every message once, counters exact
    assert keys == events
    assert {f"m{i}" for i in acked if i % 2 == 0} <= stored
