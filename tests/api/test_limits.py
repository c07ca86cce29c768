"""Request limits (safehold.api.limits, docs/security.md "Request limits"): body size per route class and for callers
without a key, counted while streaming; JSON depth and numbers; event metadata; per-key rates; 405 ``Allow``."""

from __future__ import annotations

import asyncio
import json

import pytest

from safehold.api.limits import MULTIPART_OVERHEAD, Buckets, route_class
from safehold.app import create_app
from safehold.store.models import Case

MiB = 1024 * 1024


def asgi(app, method, path, headers=(), chunks=(), chunk_count=None):
    """Drive the app directly with a streamed body (no Content-Length unless given in ``headers``); returns
    (status, headers, body, bytes the app consumed). ``chunks`` may be a generator: only what is pulled counts."""
    consumed = [0]
    it = iter(chunks)
    sent: list[dict] = []

    async def receive():
        try:
            chunk = next(it)
        except StopIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        consumed[0] += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict((k.decode(), v.decode()) for k, v in start["headers"]), body, consumed[0]


def endless(size=64 * 1024, total=64 * MiB):
    """A body far over every limit under test (finite, so that code without limits fails rather than hangs)."""
    for _ in range(total // size):
        yield b"x" * size


@pytest.fixture
def app(svc):
    return create_app(svc, background=False)


def bearer(keys, role):
    return ("Authorization", keys[role]["Authorization"])


def test_route_classes():
    assert route_class("/v1/scan", True) == "upload" and route_class("/v1/scan", False) == "json"
    assert route_class("/v1/scan/batch", True) == "upload" and route_class("/v1/scan/batch", False) == "batch"
    assert route_class("/v1/conversations/c1/messages", False) == "batch"
    assert route_class("/v1/banks/known/import", True) == "import"
    assert route_class("/v1/banks/known/files", True) == "upload"
    assert route_class("/v1/banks", True) == "json"  # multipart to a JSON route gets the JSON limit
    assert route_class("/console/text/terms", True) == "upload"
    assert route_class("/console/cases/1/claim", False) == "form" and route_class("/login", False) == "form"


def test_declared_length_over_the_limit_is_refused_unread(app, keys, settings):
    length = settings.max_json_bytes + 1
    status, headers, body, consumed = asgi(
        app, "POST", "/v1/text/check", [bearer(keys, "platform"), ("Content-Length", str(length))], endless()
    )
    error = json.loads(body)["error"]
    assert status == 413 and error["code"] == "request.too_large" and error["detail"]["limit"] == length - 1
    assert consumed == 0


def multipart_file(size=64 * 1024):
    """A multipart body whose file never ends."""
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    yield from endless(size)


def test_streamed_body_is_cut_off_at_the_limit(app, keys, settings):
    """A chunked body (no Content-Length) is counted as it comes: the server stops pulling right after the limit."""
    settings.max_upload_bytes = 2 * MiB
    status, _, body, consumed = asgi(app, "POST", "/v1/text/check", [bearer(keys, "platform")], endless())
    assert status == 413 and json.loads(body)["error"]["code"] == "request.too_large"
    assert settings.max_json_bytes < consumed <= settings.max_json_bytes + 64 * 1024

    # A multipart upload to a file route: streamed to the form parser, cut off at max_upload_bytes + overhead.
    head = [bearer(keys, "platform"), ("Content-Type", "multipart/form-data; boundary=b")]
    status, _, body, consumed = asgi(app, "POST", "/v1/scan", head, multipart_file())
    assert status == 413 and json.loads(body)["error"]["code"] == "request.too_large"
    assert consumed <= 2 * MiB + MULTIPART_OVERHEAD + 64 * 1024


def test_callers_without_a_valid_key_get_the_small_limit(app, keys, settings):
    """The probe: a 1 GB body with no key cost 3 GB; a multipart upload was spooled to disk before its 413."""
    anonymous = settings.max_anonymous_bytes
    multipart = ("Content-Type", "multipart/form-data; boundary=b")
    for head in ([], [("Authorization", "Bearer sh_nope_nope")], [("Authorization", "Basic eDp5")]):
        for path, extra in (("/v1/scan", [multipart]), ("/v1/events", []), ("/console/text/terms", [multipart])):
            status, _, body, consumed = asgi(app, "POST", path, head + extra, multipart_file(4096))
            # 401 when the route authenticates before reading (its body is then never read at all)
            assert status in (401, 413), (head, path, body)
            if status == 413:
                assert "without a valid API key" in json.loads(body)["error"]["message"]
            assert consumed <= anonymous + 4096, (head, path, consumed)
        status, _, _, consumed = asgi(
            app, "POST", "/v1/scan", [*head, multipart, ("Content-Length", str(10**9))], endless()
        )
        assert status == 413 and consumed == 0
    # A forged session cookie is no session.
    head = [("Cookie", "safehold_session=forged"), multipart]
    status, _, _, consumed = asgi(app, "POST", "/console/text/terms", head, multipart_file(4096))
    assert status == 413 and consumed <= anonymous + 4096


def test_bodies_within_limits_still_work(client, keys):
    platform = keys["platform"]
    big = "word " * 20_000  # 100 KB: over the anonymous limit, under the JSON one
    r = client.post("/v1/text/check", json={"content_id": "p1", "text": big[:99_000]}, headers=platform)
    assert r.status_code == 200, r.text
    r = client.post("/v1/text/check", json={"content_id": "p1", "text": big[:99_000]})
    assert r.status_code == 413
    small = client.post("/v1/text/check", json={"text": "hello"})
    assert small.status_code == 401  # small anonymous bodies reach authentication as before


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b'{"text": NaN}', 400, "request.invalid_json"),
        (b'{"text": "a", "n": -Infinity}', 400, "request.invalid_json"),
        (b'{"text": "a", "n": 1e999999}', 422, "request.number_out_of_range"),
        (b'{"text": "a", "n": 18446744073709551616}', 422, "request.number_out_of_range"),
        (b'{"text": "a", "n": [' + b"[" * 40 + b"]" * 40 + b"]}", 400, "request.json_too_deep"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "request.json_too_deep"),
    ],
)
def test_json_edge_cases_are_4xx(client, keys, raw, status, code):
    for path in ("/v1/text/check", "/v1/search/check", "/v1/scan", "/v1/banks"):
        r = client.post(path, content=raw, headers={**keys["admin"], "Content-Type": "application/json"})
        assert r.status_code == status and r.json()["error"]["code"] == code, (path, r.text)


def test_event_metadata_is_bounded(client, keys):
    platform = keys["platform"]

    def send(metadata, key):
        body = {"type": "account", "account": {"id": "u", "metadata": metadata}}
        return client.post("/v1/events", json=body, headers={**platform, "Idempotency-Key": key})

    deep: dict = {}
    cur = deep
    for _ in range(9):
        cur["a"] = {}
        cur = cur["a"]
    r = send(deep, "k1")
    assert r.status_code == 422 and r.json()["error"]["code"] == "event.metadata_too_deep"
    r = send({"blob": "x" * 17_000}, "k2")
    assert r.status_code == 422 and r.json()["error"]["code"] == "event.metadata_too_large"
    r = client.post(  # signal detail too, and the multipart 'event' field
        "/v1/events",
        data={"event": json.dumps({"type": "content", "content": {"id": "c", "metadata": {"b": "x" * 17_000}}})},
        files={"file": ("a.jpg", b"xx")},
        headers={**platform, "Idempotency-Key": "k3"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "event.metadata_too_large"
    assert send({"ok": {"small": [1, 2, 3]}}, "k4").status_code == 200
    # 60 MB of metadata (the probe) never reaches the service: the JSON body limit refuses it first.
    r = send({"blob": "x" * (2 * MiB)}, "k5")
    assert r.status_code == 413


def test_reading_a_case_with_deep_stored_metadata_never_500s(client, keys, svc):
    body = {"type": "account", "account": {"id": "u"}, "signals": [{"source": "user_report", "confidence": 0.9}]}
    r = client.post("/v1/events", json=body, headers={**keys["platform"], "Idempotency-Key": "d1"})
    case_id = r.json()["cases"][0]["id"]
    deep: dict = {}
    cur = deep
    for _ in range(400):
        cur["a"] = {}
        cur = cur["a"]
    with svc.db.session() as s:  # as stored before the bounds existed
        s.get(Case, case_id).metadata_ = {"deep": deep, "many": list(range(50_000))}
    r = client.get(f"/v1/cases/{case_id}", headers=keys["reviewer"])
    assert r.status_code == 200, r.text
    assert "clipped" in r.text
    assert client.get("/v1/cases", headers=keys["reviewer"]).status_code == 200


def test_rate_limit_per_key_with_retry_after(client, keys, settings):
    # A slow refill (one token per 100 s), so a slow machine cannot earn a token back between the requests.
    settings.rate_limit, settings.rate_burst = 0.01, 3
    settings.rate_limit_anonymous, settings.rate_burst_anonymous = 0.01, 2
    admin, reviewer = keys["admin"], keys["reviewer"]
    assert [client.get("/v1/banks", headers=admin).status_code for _ in range(3)] == [200] * 3
    r = client.get("/v1/banks", headers=admin)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate.limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert client.get("/v1/cases", headers=reviewer).status_code == 200  # another key has its own bucket
    # Without a key: per client address, and the body is never read.
    assert [client.get("/v1/banks").status_code for _ in range(2)] == [401, 401]
    r = client.post("/v1/scan", content=b"x" * 100)
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert client.get("/v1/health").status_code == 200  # health is never rate-limited


def test_rate_limit_off(client, keys, settings):
    settings.rate_limit = 0
    assert all(client.get("/v1/banks", headers=keys["admin"]).status_code == 200 for _ in range(50))


def test_buckets_refill_and_stay_bounded():
    b = Buckets(rate=10.0, burst=2, max_entries=100)
    assert b.take("k", 0.0) == 0 and b.take("k", 0.0) == 0
    assert b.take("k", 0.0) == pytest.approx(0.1)
    assert b.take("k", 0.1) == 0  # refilled one token in 0.1 s
    for i in range(1000):
        b.take(f"random-{i}", 1.0)
    assert len(b.state) <= 100


def test_405_names_every_allowed_method(client, keys):
    r = client.delete("/v1/banks", headers=keys["admin"])
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    assert r.json()["error"]["code"] == "request.method_not_allowed"
    r = client.put("/v1/health")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = client.get("/console/cases/1/claim")
    assert r.status_code == 405 and r.headers["Allow"] == "POST" and "text/html" in r.headers["content-type"]


def _limits_middleware(app):
    """The app's RequestLimits instance (the outermost of its own middleware), found by walking the stack."""
    from safehold.api.limits import RequestLimits

    layer = app.middleware_stack
    while not isinstance(layer, RequestLimits):
        layer = layer.app
    return layer


def test_uploads_in_flight_share_one_budget(client, keys, settings):
    """The memory of uploads being read is reserved before the file is read and given back with the response; when
    the process's share is taken an upload is refused with 503 media.busy and Retry-After, unread."""
    from tests.media import jpeg

    settings.media_busy_wait_seconds = 0
    files = {"file": ("a.jpg", jpeg(3))}
    assert client.post("/v1/scan", files=files, headers=keys["platform"]).status_code == 200
    budget = _limits_middleware(client.app).limits(settings).uploads
    assert budget.in_use == 0  # released when the answer went out
    budget.wait = 0
    budget.acquire(budget.capacity)  # another request holds all of it
    try:
        r = client.post("/v1/scan", files=files, headers=keys["platform"])
        assert r.status_code == 503 and r.json()["error"]["code"] == "media.busy", r.text
        assert int(r.headers["retry-after"]) >= 1
    finally:
        budget.release(budget.capacity)
    assert client.post("/v1/scan", files=files, headers=keys["platform"]).status_code == 200
    assert budget.in_use == 0


def test_the_server_tunes_the_c_allocator():
    from safehold.runtime import tune_allocator

    assert tune_allocator()  # glibc (Debian): large freed buffers go back to the system


def test_uploads_at_once_per_key_are_capped(client, keys, settings):
    """One key's extra upload is refused unread while its others are being served; other keys are not affected."""
    from tests.media import jpeg

    settings.max_uploads_per_key = 1
    files = {"file": ("a.jpg", jpeg(3))}
    assert client.post("/v1/scan", files=files, headers=keys["platform"]).status_code == 200
    lim = _limits_middleware(client.app).limits(settings)
    assert lim.uploading == {}  # the count went back down when the answer was sent
    token = keys["platform"]["Authorization"].split()[1].encode()
    lim.uploading[token] = 1  # one upload of this key is being served
    r = client.post("/v1/scan", files=files, headers=keys["platform"])
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate.too_many_uploads", r.text
    assert r.headers["retry-after"] == "1"
    assert client.post("/v1/scan", files=files, headers=keys["admin"]).status_code == 200  # another key
    del lim.uploading[token]
    assert client.post("/v1/scan", files=files, headers=keys["platform"]).status_code == 200


def test_a_server_app_settles_its_heap_once_ready(svc):
    """``serving=True`` (``safehold serve`` and its processes): at start-up the routes are built (a walk no
    middleware counts) and everything alive is frozen out of the collector's full collections, which on a large
    heap held the interpreter for hundreds of milliseconds."""
    import gc

    from fastapi.testclient import TestClient
    from prometheus_client import REGISTRY

    from safehold.app import create_app

    def not_found() -> float:
        labels = {"route": "other", "method": "GET", "status": "4xx"}
        return REGISTRY.get_sample_value("safehold_http_requests_total", labels) or 0.0

    before = not_found()
    try:
        with TestClient(create_app(svc, background=False, serving=True)) as c:
            assert gc.get_freeze_count() > 0
            assert not_found() == before  # the walk past every route was no request
            assert c.get("/livez").status_code == 200
            assert c.get("/nowhere").status_code == 404 and not_found() == before + 1  # a request is counted
    finally:
        gc.unfreeze()  # this process makes many apps: let the collector have them back
