"""URL fetches are bounded: a total deadline, per-caller and global caps, and /v1/health never waits behind them
(issue [6], item 2). The slow servers run on 127.0.0.1 in a thread, with bounded loops."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from safehold.errors import SafeholdError
from safehold.scanning.fetch import UrlGuard, fetch
from safehold.scanning.limits import FetchSlots

LOCAL = UrlGuard(["127.0.0.1/32"])


class SlowServer:
    """Answers every connection by dripping bytes: the headers at once (or slowly), then one body byte per
    ``interval`` s, at most ``max_bytes`` of them, until stopped."""

    def __init__(self, interval: float = 0.3, slow_headers: bool = False, max_bytes: int = 100):
        self.interval, self.slow_headers, self.max_bytes = interval, slow_headers, max_bytes
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/slow.jpg"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"
        try:
            conn.recv(65536)
            if self.slow_headers:
                for b in head:
                    if self.stop.wait(self.interval):
                        return
                    conn.sendall(bytes([b]))
            else:
                conn.sendall(head)
            for _ in range(self.max_bytes):
                if self.stop.wait(self.interval):
                    return
                conn.sendall(b"\xff")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def slow():
    servers = []

    def make(**kw):
        servers.append(SlowServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.mark.parametrize("slow_headers", [False, True])
def test_a_dripping_server_is_cut_at_the_total_deadline(slow, slow_headers):
    """Was: every byte arriving within the read timeout kept the fetch alive for as long as the server liked."""
    server = slow(interval=0.2, slow_headers=slow_headers)
    t0 = time.monotonic()
    with pytest.raises(SafeholdError) as ei:
        fetch(server.url, guard=LOCAL, max_bytes=10_000, timeout=5.0, deadline=1.0)
    elapsed = time.monotonic() - t0
    assert ei.value.code == "url.timeout" and ei.value.detail["deadline_seconds"] == 1.0
    assert 0.9 < elapsed < 1.6, elapsed


def test_fetch_slots_per_key_and_global():
    slots = FetchSlots(total=3, per_key=2)
    with slots.hold("apikey:a"), slots.hold("apikey:a"):
        with pytest.raises(SafeholdError) as ei:
            with slots.hold("apikey:a"):
                pass
        assert ei.value.code == "url.too_many_fetches" and ei.value.status == 429
        assert ei.value.headers["Retry-After"]
        with slots.hold("apikey:b"):
            with pytest.raises(SafeholdError) as ei:
                with slots.hold("apikey:c"):
                    pass
            assert ei.value.code == "url.busy" and ei.value.status == 503 and ei.value.headers["Retry-After"]
    assert slots.running == 0
    with slots.hold("apikey:c"):
        assert slots.running == 1


@pytest.fixture
def limited_client(tmp_path, database_url):
    from fastapi.testclient import TestClient

    from safehold.app import create_app
    from safehold.config import Settings
    from safehold.services import Services

    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        url_fetch_allow=["127.0.0.1/32"],
        url_fetch_deadline=2.5,
        url_fetch_max_per_key=2,
        url_fetch_max_concurrent=60,
    )
    svc = Services(settings)
    token = svc.apikeys.create("platform-1", "platform").token
    other = svc.apikeys.create("platform-2", "platform").token
    try:
        with TestClient(create_app(svc, background=False)) as c:
            yield c, svc, {"Authorization": f"Bearer {token}"}, {"Authorization": f"Bearer {other}"}
    finally:
        svc.close()


def test_scan_api_caps_fetches_per_key_with_429(limited_client, slow):
    client, svc, key, other = limited_client
    server = slow(interval=0.2)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.post, "/v1/scan", json={"url": server.url}, headers=key) for _ in range(6)]
        deadline = time.monotonic() + 5
        while svc.scans.fetches.running < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        # another key still gets its own share
        extra = pool.submit(client.post, "/v1/scan", json={"url": server.url}, headers=other)
        answers = [f.result(timeout=20) for f in futures]
        assert extra.result(timeout=20).json()["error"]["code"] == "url.timeout"
    codes = sorted(r.json()["error"]["code"] for r in answers)
    assert codes.count("url.too_many_fetches") == 4 and codes.count("url.timeout") == 2
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1


def test_health_answers_while_slow_fetches_fill_the_worker_threads(limited_client, slow):
    """Was: 45 URL scans against a 1-byte-per-5-s server took every worker thread and /v1/health hung."""
    client, svc, _key, _other = limited_client
    server = slow(interval=0.5)
    svc.scans.fetches.per_key = 100  # let one key fill the whole thread pool, as in the probe
    with ThreadPoolExecutor(45) as pool:
        futures = [pool.submit(client.post, "/v1/scan", json={"url": server.url}, headers=_key) for _ in range(45)]
        deadline = time.monotonic() + 5
        while svc.scans.fetches.running < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert svc.scans.fetches.running >= 30, svc.scans.fetches.running
        r = client.get("/v1/health")
        assert r.status_code == 200
        assert svc.scans.fetches.running > 0, "health answered only once the fetches had ended"
        for f in futures:
            assert f.result(timeout=30).json()["error"]["code"] == "url.timeout"
