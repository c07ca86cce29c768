"""HMA's API on Safehold: each route answers HMA's documented requests with HMA's shapes.

The expected shapes are HMA 2.0's (OpenMediaMatch, facebook/ThreatExchange hasher-matcher-actioner 1.1.7; its
``blueprints/``, ``tests/test_api_banks.py``, ``tests/test_match_api.py`` and ``website/content/hma/api.md``),
written here as our own fixtures: ``/m/raw_lookup`` → ``{"matches": [id]}``, ``/m/lookup`` →
``{"BANK": [{"bank_content_id": id, "distance": "0"}]}``, ``/h/hash`` → ``{"pdq": "…"}``, ``/c/banks`` →
``[{"name", "matching_enabled_ratio"}]``, content added → ``{"id", "signals"}``, removed → ``{"deleted": n}``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.media import jpeg, variant

BANK = "TEST_BANK"


def _pdq(svc, data: bytes) -> str:
    """PDQ as Safehold's own scanning hasher computes it."""
    return svc.scans.hash_bytes(data).get("pdq").value


@pytest.fixture
def banked(client, keys, svc):
    """A bank made through HMA's routes, holding one image's PDQ added as a raw signal: (content id, image)."""
    image = jpeg(11)
    r = client.post("/c/banks", json={"name": BANK}, headers=keys["admin"])
    assert r.status_code == 201, r.text
    assert r.json() == {"name": BANK, "matching_enabled_ratio": 1.0}
    pdq = _pdq(svc, image)
    r = client.post(f"/c/bank/{BANK}/signal", json={"pdq": pdq, "note": "campaign ABC"}, headers=keys["admin"])
    assert r.status_code == 200, r.text
    assert r.json() == {"id": r.json()["id"], "signals": {"pdq": pdq}}
    return r.json()["id"], image


def test_raw_lookup_of_a_banked_pdq_answers_its_content_id(client, keys, svc, banked):
    content_id, image = banked
    platform = keys["platform"]
    query = {"signal_type": "pdq", "signal": _pdq(svc, image)}
    r = client.get("/m/raw_lookup", params=query, headers=platform)
    assert r.status_code == 200 and r.json() == {"matches": [content_id]}

    near = _pdq(svc, variant(image))
    r = client.get("/m/raw_lookup", params={**query, "signal": near, "include_distance": "true"}, headers=platform)
    [match] = r.json()["matches"]
    assert match["bank_content_id"] == content_id and match["distance"].isdigit() and int(match["distance"]) <= 31

    r = client.get("/m/raw_lookup", params={**query, "banks": "OTHER_BANK"}, headers=platform)
    assert r.json() == {"matches": []}


def test_raw_lookup_without_a_match_is_empty(client, keys, svc, banked):
    r = client.get(
        "/m/raw_lookup", params={"signal_type": "pdq", "signal": _pdq(svc, jpeg(99))}, headers=keys["platform"]
    )
    assert r.status_code == 200 and r.json() == {"matches": []}


def test_lookup_of_a_hash_answers_matches_by_bank(client, keys, svc, banked):
    content_id, image = banked
    query = {"signal_type": "pdq", "signal": _pdq(svc, image)}
    r = client.get("/m/lookup", params=query, headers=keys["platform"])
    assert r.status_code == 200 and r.json() == {BANK: [{"bank_content_id": content_id, "distance": "0"}]}
    assert (
        client.get("/m/lookup", params={**query, "banks": "NON_EXISTENT_BANK"}, headers=keys["platform"]).json() == {}
    )
    # bypass_coinflip and seed are HMA's; accepted (Safehold's banks are on or off: there is no coinflip)
    r = client.get("/m/lookup", params={**query, "bypass_coinflip": "true", "seed": "1234"}, headers=keys["platform"])
    assert r.json() == {BANK: [{"bank_content_id": content_id, "distance": "0"}]}


def test_lookup_of_an_uploaded_file_answers_by_signal_type_then_bank(client, keys, banked):
    content_id, image = banked
    r = client.post("/m/lookup", files={"photo": ("example.jpg", image, "image/jpeg")}, headers=keys["platform"])
    assert r.status_code == 200, r.text
    assert r.json() == {"pdq": {BANK: [{"bank_content_id": content_id, "distance": "0"}]}}
    r = client.post("/m/lookup", files={"photo": ("other.jpg", jpeg(98), "image/jpeg")}, headers=keys["platform"])
    assert r.json() == {"pdq": {}}


def test_hash_of_an_upload_is_safeholds_own_pdq(client, keys, svc):
    image = jpeg(3)
    r = client.post("/h/hash", files={"photo": ("example.png", image, "image/jpeg")}, headers=keys["platform"])
    assert r.status_code == 200, r.text
    assert r.json() == {"pdq": _pdq(svc, image)}


class _Server:
    """A local server of one image, for HMA's ``url=`` routes (the fetch guard is told to allow loopback)."""

    def __init__(self, payload: bytes):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/image1.jpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def image_server(svc):
    from safehold.scanning.fetch import UrlGuard

    server = _Server(jpeg(5))
    svc.scans.guard = UrlGuard(["127.0.0.1/32"])
    yield server
    server.server.shutdown()


def test_url_routes_fetch_through_safeholds_guarded_fetch(client, keys, svc, image_server):
    pdq = _pdq(svc, jpeg(5))
    r = client.get("/h/hash", params={"url": image_server.url}, headers=keys["platform"])
    assert r.status_code == 200 and r.json() == {"pdq": pdq}
    r = client.get("/h/hash", params={"url": image_server.url, "content_type": "video"}, headers=keys["platform"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "hma.content_type_mismatch"

    client.post("/c/banks", json={"name": "URL_BANK"}, headers=keys["admin"])
    r = client.post(
        "/c/bank/URL_BANK/content",
        params={"url": image_server.url, "content_type": "photo"},
        json={"metadata": {"content_id": "1197433091", "json": {"asdf": {}}}},
        headers=keys["admin"],
    )
    assert r.status_code == 200, r.text
    added = r.json()
    assert set(added) == {"id", "signals"} and added["signals"]["pdq"]  # the bank's reference PDQ
    r = client.get("/m/lookup", params={"url": image_server.url}, headers=keys["platform"])
    assert r.json() == {"pdq": {"URL_BANK": [{"bank_content_id": added["id"], "distance": "0"}]}}
    r = client.get("/m/lookup", params={"url": image_server.url, "signal_type": "pdq"}, headers=keys["platform"])
    assert r.json() == {"URL_BANK": [{"bank_content_id": added["id"], "distance": "0"}]}

    got = client.get(f"/c/bank/URL_BANK/content/{added['id']}", headers=keys["admin"]).json()
    assert got["metadata"] == {"content_id": "1197433091", "json": {"asdf": {}}}


def test_url_routes_refuse_loopback_like_a_url_scan(client, keys):
    r = client.get("/h/hash", params={"url": "http://127.0.0.1:9/x.jpg"}, headers=keys["platform"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "url.forbidden_address"
    assert r.json()["message"] == r.json()["error"]["message"]


def test_bank_curation_create_list_update_delete(client, keys):
    admin = keys["admin"]
    assert client.get("/c/banks", headers=admin).json() == []
    assert client.post("/c/banks", json={"name": "MY_TEST_BANK_01"}, headers=admin).status_code == 201
    assert client.get("/c/banks", headers=admin).json() == [{"name": "MY_TEST_BANK_01", "matching_enabled_ratio": 1.0}]

    r = client.put("/c/bank/MY_TEST_BANK_01", json={"name": "MY_TEST_BANK_RENAMED"}, headers=admin)
    assert r.status_code == 200 and r.json()["name"] == "MY_TEST_BANK_RENAMED"
    r = client.put("/c/bank/MY_TEST_BANK_RENAMED", json={"enabled": False}, headers=admin)
    assert r.json()["matching_enabled_ratio"] == 0
    r = client.put("/c/bank/MY_TEST_BANK_RENAMED", json={"enabled_ratio": 1.0}, headers=admin)
    assert r.json() == {"name": "MY_TEST_BANK_RENAMED", "matching_enabled_ratio": 1.0}
    assert client.get("/c/bank/MY_TEST_BANK_RENAMED", headers=admin).json() == r.json()

    r = client.post("/c/banks", json={"name": "DISABLED_BANK", "enabled": False}, headers=admin)
    assert r.json() == {"name": "DISABLED_BANK", "matching_enabled_ratio": 0.0}

    assert client.delete("/c/bank/MY_TEST_BANK_RENAMED", headers=admin).json() == {"message": "Done"}
    # HMA: deleting a bank that is not there succeeds too
    r = client.delete("/c/bank/MY_TEST_BANK_RENAMED", headers=admin)
    assert r.status_code == 200 and r.json() == {"message": "Done"}
    assert [b["name"] for b in client.get("/c/banks", headers=admin).json()] == ["DISABLED_BANK"]


def test_a_disabled_bank_does_not_match(client, keys, svc, banked):
    _, image = banked
    client.put(f"/c/bank/{BANK}", json={"enabled_ratio": 0.0}, headers=keys["admin"])
    r = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": _pdq(svc, image)}, headers=keys["platform"])
    assert r.json() == {"matches": []}


def test_bank_content_add_get_update_remove(client, keys, svc):
    admin = keys["admin"]
    client.post("/c/banks", json={"name": "NEW_BANK"}, headers=admin)
    image = jpeg(21)
    r = client.post(
        "/c/bank/NEW_BANK/content",
        files={"photo": ("image1.jpg", image, "image/jpeg")},
        data={"note": "Reported by user X", "metadata": '{"content_id": "ext-id-123"}'},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    content_id = r.json()["id"]
    assert list(r.json()["signals"]) == ["pdq"]  # HMA hashes a photo with PDQ only: one content, one entry

    r = client.get(f"/c/bank/NEW_BANK/content/{content_id}", headers=admin)
    assert r.json() == {
        "id": content_id,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": {"name": "NEW_BANK", "matching_enabled_ratio": 1.0},
        "metadata": {"content_id": "ext-id-123"},
        "note": "Reported by user X",
    }
    signals = client.get(f"/c/bank/NEW_BANK/content/{content_id}?include_signals=true", headers=admin).json()
    assert set(signals["signals"]) == {"pdq"}
    assert (
        "metadata"
        not in client.get(f"/c/bank/NEW_BANK/content/{content_id}?include_metadata=false", headers=admin).json()
    )

    pdq = signals["signals"]["pdq"]
    r = client.put(f"/c/bank/NEW_BANK/content/{content_id}", json={"disable_until_ts": 0}, headers=admin)
    assert r.status_code == 200 and r.json()["disable_until_ts"] == 0
    lookup = {"signal_type": "pdq", "signal": pdq}
    assert client.get("/m/lookup", params=lookup, headers=keys["platform"]).json() == {}
    client.put(f"/c/bank/NEW_BANK/content/{content_id}", json={"disable_until_ts": 1}, headers=admin)
    assert client.get("/m/lookup", params=lookup, headers=keys["platform"]).json() != {}

    assert client.delete(f"/c/bank/NEW_BANK/content/{content_id}", headers=admin).json() == {"deleted": 1}
    assert client.delete(f"/c/bank/NEW_BANK/content/{content_id}", headers=admin).json() == {"deleted": 0}
    r = client.get(f"/c/bank/NEW_BANK/content/{content_id}", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "entry.not_found"
    assert client.get("/m/raw_lookup", params=lookup, headers=keys["platform"]).json() == {"matches": []}


def test_content_of_another_bank_is_not_found_through_this_one(client, keys, banked):
    content_id, _ = banked
    client.post("/c/banks", json={"name": "OTHER"}, headers=keys["admin"])
    r = client.get(f"/c/bank/OTHER/content/{content_id}", headers=keys["admin"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "entry.not_found"
    assert client.delete(f"/c/bank/OTHER/content/{content_id}", headers=keys["admin"]).json() == {"deleted": 0}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/m/raw_lookup", {"params": {"signal_type": "nope", "signal": "ab"}}, 400, "signal.unknown_type"),
        (
            "GET",
            "/m/raw_lookup",
            {"params": {"signal_type": "pdq", "signal": "not-a-hash"}},
            400,
            "signal.invalid_value",
        ),
        ("GET", "/m/lookup", {"params": {"signal_type": "pdq"}}, 400, "hma.missing_input"),
        ("POST", "/c/banks", {"json": {"name": "HALF", "enabled_ratio": 0.5}}, 422, "hma.unsupported_ratio"),
        ("POST", "/c/banks", {"json": {"name": "01 bad name"}}, 422, "request.invalid"),
        ("GET", "/c/bank/NO_SUCH_BANK", {}, 404, "bank.not_found"),
        ("POST", f"/c/bank/{BANK}/signal", {"json": {}}, 400, "hma.no_signal_types"),
        ("POST", f"/c/bank/{BANK}/signal", {"json": {"pdq": 5}}, 422, "request.invalid"),
        ("POST", f"/c/bank/{BANK}/content", {}, 400, "hma.missing_input"),
        (
            "POST",
            f"/c/bank/{BANK}/content",
            {"files": {"file": ("a.jpg", b"x", "image/jpeg")}},
            400,
            "request.missing_file",
        ),
        (
            "POST",
            "/h/hash",
            {"files": {"photo": ("a.txt", b"just text", "text/plain")}},
            400,
            "media.unsupported_format",
        ),
        ("PUT", f"/c/bank/{BANK}/content/1", {"json": {"disable_until_ts": 1700000000}}, 422, "request.invalid"),
    ],
)
def test_bad_inputs_answer_hmas_message_with_safeholds_code(client, keys, banked, method, path, kwargs, status, code):
    r = client.request(method, path, headers=keys["admin"], **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code and body["message"] == body["error"]["message"]


def test_unauthenticated_and_wrong_roles_are_refused(client, keys):
    r = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": "0" * 64})
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.missing_key"
    assert "Bearer" in r.json()["message"] and r.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/c/banks", json={"name": "X"}, headers=keys["platform"]).status_code == 403
    assert client.get("/c/banks", headers=keys["platform"]).status_code == 403


def test_an_allow_bank_match_suppresses_block_matches(client, keys, svc, banked):
    _, image = banked
    client.post("/v1/banks", json={"name": "known-good", "kind": "allow"}, headers=keys["admin"])
    client.post(
        "/v1/banks/known-good/entries", json={"signal_type": "pdq", "value": _pdq(svc, image)}, headers=keys["admin"]
    )
    r = client.get("/m/lookup", params={"signal_type": "pdq", "signal": _pdq(svc, image)}, headers=keys["platform"])
    assert r.json() == {}


def test_unknown_hma_paths_answer_json_not_a_page(client, keys):
    r = client.get("/m/compare", headers={**keys["admin"], "Accept": "text/html"})
    assert r.status_code in (404, 405) and r.json()["error"]["code"].startswith("request.")


def test_hmas_routes_get_the_apis_body_limits():
    from safehold.api.limits import route_class

    assert route_class("/c/banks", multipart=False) == "json"
    assert route_class("/c/bank/X/signal", multipart=False) == "json"
    for path in ("/h/hash", "/m/lookup", "/c/bank/X/content"):
        assert route_class(path, multipart=True) == "upload", path


def test_a_video_is_hashed_with_hmas_video_types(client, keys, tmp_path):
    import hashlib

    from tests.media import H264, ffmpeg

    video = ffmpeg(tmp_path / "v.mp4", "-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=5", *H264)
    r = client.post("/h/hash", files={"video": ("v.mp4", video, "video/mp4")}, headers=keys["platform"])
    assert r.status_code == 200, r.text
    assert r.json()["video_md5"] == hashlib.md5(video).hexdigest()
    assert set(r.json()) == {"video_md5", "vpdq"}
    r = client.post("/h/hash", files={"photo": ("v.mp4", video, "video/mp4")}, headers=keys["platform"])
    assert set(r.json()) == {"video_md5", "vpdq"}  # the field names HMA's content type; the bytes decide


@pytest.fixture
def live(svc):
    """Safehold served over real HTTP on loopback, for clients that are not Python's test client."""
    import socket
    import time

    import uvicorn

    from safehold.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(svc, background=False), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_hmas_documented_curl_commands_work_with_only_a_key_added(live, keys, svc, tmp_path):
    """The curl commands of HMA's API documentation (website/content/hma/api.md), unchanged but for the base URL
    and the ``Authorization`` header, against Safehold served over HTTP."""
    import json
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    auth = ["-H", keys["admin"]["Authorization"].join(["Authorization: ", ""])]

    def curl(*args: str):
        out = subprocess.run(["curl", "-s", *auth, *args], capture_output=True, check=True, timeout=60).stdout
        return json.loads(out)

    example = tmp_path / "example.png"
    example.write_bytes(jpeg(31))
    assert curl("-X", "POST", "--form", f"photo=@{example}", f"{live}/h/hash") == {"pdq": _pdq(svc, jpeg(31))}

    assert curl("-X", "POST", "-H", "Content-Type: application/json", "-d", '{"name": "TEST_BANK"}', f"{live}/c/banks")
    added = curl("-X", "POST", "--form", f"photo=@{example}", f"{live}/c/bank/TEST_BANK/content")
    pdq = added["signals"]["pdq"]
    expected = {"TEST_BANK": [{"bank_content_id": added["id"], "distance": "0"}]}
    assert curl("-X", "GET", f"{live}/m/lookup?signal_type=pdq&signal={pdq}") == expected
    assert curl("-X", "POST", "--form", f"photo=@{example}", f"{live}/m/lookup?bypass_coinflip=false") == {
        "pdq": expected
    }
