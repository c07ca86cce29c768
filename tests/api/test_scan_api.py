"""Scanning over HTTP: files, raw hashes, URLs, batches; verdicts and each bank's settings."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from sqlalchemy import func, select

from tests.media import encode, jpeg, photo, variant


@pytest.fixture
def bank_with_image(client, keys):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "known"}, headers=admin)
    original = jpeg(7)
    r = client.post(
        "/v1/banks/known/files",
        headers=admin,
        data={"category": "A1", "external_id": "x-7"},
        files={"file": ("known.jpg", original, "image/jpeg")},
    )
    assert r.status_code == 201, r.text
    return original


PROVENANCE = ("source", "external_id", "note", "metadata", "added_by", "added_at", "value")


def test_a_platform_sees_what_it_acts_on_never_the_entrys_provenance(client, keys, svc):
    """Was: a platform key's answer carried the entry's source, external id, note and the banked file's path."""
    admin, platform = keys["admin"], keys["platform"]
    client.post("/v1/banks", json={"name": "known"}, headers=admin)
    client.post("/v1/banks", json={"name": "links"}, headers=admin)
    original = jpeg(7)
    meta = {"category": "A1", "source": "ncmec", "external_id": "x-7", "note": "from the March list"}
    files = {"file": ("/home/admin/evidence/known.jpg", original, "image/jpeg")}
    assert client.post("/v1/banks/known/files", headers=admin, data=meta, files=files).status_code == 201
    url = {
        "signal_type": "url",
        "value": "bad.example/folder/",
        "note": "tip from a trusted flagger",
        "category": "csam",
    }
    assert client.post("/v1/banks/links/entries", headers=admin, json=url).status_code == 201
    md5 = next(e for e in svc.banks.entries("known") if e["signal_type"] == "md5")["value"]

    def matches(headers) -> list[dict]:
        """Every match every scanning door answers ``headers`` with."""
        found = _scan_file(client, headers, original)["matches"]
        found += client.post("/v1/scan", headers=headers, json={"signal_type": "md5", "value": md5}).json()["matches"]
        link = {"url": "https://bad.example/folder/x.html", "fetch": False}
        found += client.post("/v1/scan", headers=headers, json=link).json()["matches"]
        batch = client.post("/v1/scan/batch", headers=headers, json={"items": [link]}).json()["results"]
        found += batch[0]["matches"]
        multi = client.post("/v1/scan/batch", headers=headers, files=[("files", ("a.jpg", original))])
        found += multi.json()["results"][0]["matches"]
        return found

    seen = matches(platform)
    event = {"type": "content", "content": {"id": "post-1"}}
    r = client.post(
        "/v1/events",
        headers={**platform, "Idempotency-Key": "e1"},
        data={"event": json.dumps(event)},
        files={"file": ("u.jpg", original)},
    )
    seen += r.json()["scan"]["matches"]
    assert len(seen) == 9 and all(set(m["entry"]) == {"id", "category"} for m in seen), seen
    assert {m["bank"] for m in seen} == {"known", "links"} and all("distance" in m for m in seen)
    assert "evidence" not in json.dumps(seen) and "March" not in json.dumps(seen)
    text = {"text": "new photos at https://bad.example/folder/x.html", "content_id": "t1"}
    checked = client.post("/v1/text/check", headers=platform, json=text).json()["url_matches"][0]["matches"]
    assert "external_id" not in checked[0] and checked[0]["category"] == "csam"
    # Staff who may read banks see the provenance (the console and the bank routes show it anyway).
    staff = matches(keys["reviewer"])
    assert all(set(PROVENANCE) <= set(m["entry"]) for m in staff)
    assert {m["entry"]["note"] for m in staff} == {"from the March list", "tip from a trusted flagger"}


def _scan_file(client, headers, data, name="upload.jpg"):
    r = client.post("/v1/scan", headers=headers, files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 200, r.text
    return r.json()


def test_reencoded_copy_matches_with_provenance(client, keys, bank_with_image):
    res = _scan_file(client, keys["reviewer"], variant(bank_with_image, scale=0.5, quality=60))
    assert res["verdict"] == "match"
    pdq = [m for m in res["matches"] if m["signal_type"] == "pdq"]
    assert pdq and 0 <= pdq[0]["distance"] <= 31
    assert pdq[0]["bank"] == "known" and pdq[0]["entry"]["category"] == "A1"
    assert pdq[0]["entry"]["external_id"] == "x-7" and pdq[0]["variant"] == "original"
    assert {s["type"] for s in res["signals"]} >= {"pdq", "md5", "sha1", "sha256"}

    exact = _scan_file(client, keys["platform"], bank_with_image)
    assert {m["signal_type"] for m in exact["matches"]} == {"pdq", "md5"}
    assert min(m["distance"] for m in exact["matches"]) == 0


def test_unrelated_images_do_not_match(client, keys, bank_with_image):
    for seed in range(100, 110):
        res = _scan_file(client, keys["platform"], jpeg(seed))
        assert res["verdict"] == "no_match", seed
        assert res["matches"] == []


def test_png_and_webp_copies_match(client, keys, bank_with_image):
    img = Image.open(io.BytesIO(bank_with_image))
    for fmt in ("PNG", "WEBP"):
        res = _scan_file(client, keys["platform"], encode(img, fmt), f"copy.{fmt.lower()}")
        assert res["verdict"] == "match", fmt


def test_bad_media_is_unhashable_not_an_error(client, keys, bank_with_image):
    truncated = bank_with_image[: len(bank_with_image) // 3]
    res = _scan_file(client, keys["platform"], truncated)
    assert res["verdict"] == "unhashable" and res["error"]["code"].startswith("media.")
    flat = encode(Image.new("RGB", (300, 300), (90, 90, 90)), "PNG")
    res = _scan_file(client, keys["platform"], flat, "flat.png")
    assert res["verdict"] == "unhashable" and "pdq.low_quality" in res["warnings"]
    r = client.post("/v1/scan", headers=keys["platform"], files={"file": ("e.jpg", b"")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "media.empty"


def test_allow_bank_suppresses_match(client, keys, bank_with_image):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "false-positives", "kind": "allow"}, headers=admin)
    client.post("/v1/banks/false-positives/files", headers=admin, files={"file": ("k.jpg", bank_with_image)})
    res = _scan_file(client, keys["platform"], variant(bank_with_image))
    assert res["verdict"] == "allowlisted"
    assert res["matches"][0]["bank_kind"] == "allow"


def test_per_bank_threshold_and_disable(client, keys, bank_with_image):
    admin = keys["admin"]
    copy = variant(bank_with_image, scale=0.4, quality=40)
    res = _scan_file(client, keys["platform"], copy)
    distance = min(m["distance"] for m in res["matches"] if m["signal_type"] == "pdq")
    if distance > 0:
        client.patch("/v1/banks/known", json={"pdq_threshold": distance - 1}, headers=admin)
        assert _scan_file(client, keys["platform"], copy)["verdict"] == "no_match"
        client.patch("/v1/banks/known", json={"pdq_threshold": 31}, headers=admin)
    client.patch("/v1/banks/known", json={"enabled": False}, headers=admin)
    assert _scan_file(client, keys["platform"], copy)["verdict"] == "no_match"


def test_dihedral_bank_matches_rotated_copies(client, keys, bank_with_image):
    admin = keys["admin"]
    rotated = encode(Image.open(io.BytesIO(bank_with_image)).transpose(Image.Transpose.ROTATE_90))
    flipped = encode(Image.open(io.BytesIO(bank_with_image)).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert _scan_file(client, keys["platform"], rotated)["verdict"] == "no_match"
    client.patch("/v1/banks/known", json={"dihedral": True}, headers=admin)
    for data in (rotated, flipped):
        res = _scan_file(client, keys["platform"], data)
        assert res["verdict"] == "match"
        assert any(m["signal_type"] == "pdq" and m["variant"] != "original" for m in res["matches"])


def test_scan_raw_hash_and_batch(client, keys, bank_with_image):
    admin, platform = keys["admin"], keys["platform"]
    entry = client.get("/v1/banks/known/entries?signal_type=pdq", headers=admin).json()["entries"][0]
    r = client.post("/v1/scan", json={"signal_type": "pdq", "value": entry["value"]}, headers=platform)
    assert r.json()["verdict"] == "match" and r.json()["media"] is None

    r = client.post(
        "/v1/scan/batch",
        headers=platform,
        json={
            "items": [
                {"signal_type": "pdq", "value": entry["value"]},
                {"signal_type": "md5", "value": "0" * 32},
                {"signal_type": "md5", "value": "xyz"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["verdict"] for x in results] == ["match", "no_match", None]
    assert results[2]["error"]["code"] == "signal.invalid_value"

    files = [("files", (f"f{i}.jpg", d)) for i, d in enumerate([variant(bank_with_image), jpeg(55), b"junk"])]
    results = client.post("/v1/scan/batch", headers=platform, files=files).json()["results"]
    assert [x["verdict"] for x in results] == ["match", "no_match", "unhashable"]


def test_scan_request_validation(client, keys):
    p = keys["platform"]
    for body in ({}, {"signal_type": "pdq"}, {"url": "http://x", "signal_type": "md5", "value": "0" * 32}):
        r = client.post("/v1/scan", json=body, headers=p)
        assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", body
    r = client.post("/v1/scan", content=b"{not json", headers={**p, "content-type": "application/json"})
    assert r.json()["error"]["code"] == "request.invalid_json"
    r = client.post("/v1/scan/batch", json={"items": []}, headers=p)
    assert r.status_code == 422


def test_nothing_but_counts_is_stored(client, keys, svc, bank_with_image):
    from safehold.store.models import BankEntry, ScanCount

    with svc.db.session() as s:
        before = s.scalar(select(func.count()).select_from(BankEntry))
    _scan_file(client, keys["platform"], jpeg(300))
    _scan_file(client, keys["platform"], variant(bank_with_image))
    svc.scans.flush_counts()
    with svc.db.session() as s:
        assert s.scalar(select(func.count()).select_from(BankEntry)) == before
        counts = {(c.media, c.verdict): c.count for c in s.scalars(select(ScanCount))}
    assert counts[("image", "no_match")] == 1 and counts[("image", "match")] == 1
    stats = client.get("/v1/stats/scans", headers=keys["auditor"]).json()
    assert sum(c["count"] for c in stats["counts"]) == 2


class _ImageServer:
    def __init__(self, payload: bytes):
        payload_ref = payload

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/img.jpg")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(payload_ref)))
                self.end_headers()
                self.wfile.write(payload_ref)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_url_scan_refuses_loopback_unless_allowed(client, keys, svc, bank_with_image):
    server = _ImageServer(variant(bank_with_image))
    url = f"http://127.0.0.1:{server.port}/img.jpg"
    try:
        r = client.post("/v1/scan", json={"url": url}, headers=keys["platform"])
        assert r.status_code == 400 and r.json()["error"]["code"] == "url.forbidden_address"
        for bad in (
            "http://10.0.0.1/x",
            "http://169.254.169.254/latest",
        ):
            r = client.post("/v1/scan", json={"url": bad}, headers=keys["platform"])
            assert r.json()["error"]["code"] in ("url.forbidden_address", "url.invalid"), bad
        for bad in ("file:///etc/passwd", "http://[::1]/"):  # the schema takes http(s) with a name or IPv4
            r = client.post("/v1/scan", json={"url": bad}, headers=keys["platform"])
            assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", bad

        from safehold.scanning.fetch import UrlGuard

        svc.scans.guard = UrlGuard(["127.0.0.1/32"])
        r = client.post("/v1/scan", json={"url": f"http://127.0.0.1:{server.port}/redirect"}, headers=keys["platform"])
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] == "match" and r.json()["name"].endswith("/img.jpg")
    finally:
        server.server.shutdown()


def test_url_bank_matches_url_itself(client, keys):
    from safehold.signals.url import url_hash

    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "urls"}, headers=admin)
    client.post(
        "/v1/banks/urls/entries",
        headers=admin,
        json={"signal_type": "url", "value": url_hash("bad.example/folder/")},
    )
    r = client.post(
        "/v1/scan",
        headers=keys["platform"],
        json={"url": "http://a.bad.example/folder/page?x=1", "fetch": False},
    )
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "match" and r.json()["matches"][0]["signal_type"] == "url"
    r = client.post("/v1/scan", headers=keys["platform"], json={"url": "http://good.example/", "fetch": False})
    assert r.json()["verdict"] == "no_match"


def test_photo_helper_is_deterministic():
    assert photo(3).tobytes() == photo(3).tobytes()
