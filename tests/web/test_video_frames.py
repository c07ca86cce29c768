"""Video against image banks, end to end: a banked image shown for 2 s inside a video matches on upload with the
frame's timestamp, the case keeps that frame (encrypted) and the console shows it blurred, revealable."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.media import H264, ellipses, ffmpeg


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    (d / "banked.png").write_bytes(ellipses())
    src = ("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=8")
    shown = ("-i", str(d / "banked.png"), "-filter_complex", "[0][1]overlay=enable='between(t,3,5)'")
    return {
        "with": ffmpeg(d / "with.mp4", *src, *shown, *H264),
        "without": ffmpeg(d / "without.mp4", *src, *H264),
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_banked_image_inside_a_video(client, keys, svc, videos, open_console, staff_users):
    admin, platform = keys["admin"], keys["platform"]
    client.post("/v1/banks", json={"name": "images"}, headers=admin)
    r = client.post("/v1/banks/images/files", headers=admin, files={"file": ("known.png", ellipses())})
    assert r.status_code == 201, r.text

    res = client.post("/v1/scan", headers=platform, files={"file": ("clean.mp4", videos["without"])}).json()
    assert res["media"] == "video" and res["verdict"] == "no_match", res

    form = {"content_id": "video-1", "account_id": "acct-9"}
    res = client.post("/v1/scan", headers=platform, data=form, files={"file": ("v.mp4", videos["with"])}).json()
    assert res["verdict"] == "match", res
    frames = [m for m in res["matches"] if m["variant"] == "frame"]
    assert frames and {m["signal_type"] for m in frames} == {"pdq"} and {m["bank"] for m in frames} == {"images"}
    assert 2.9 <= frames[0]["detail"]["timestamp"] <= 3.5 and frames[0]["distance"] <= 31
    assert all(3.0 <= m["detail"]["timestamp"] <= 5.0 for m in frames)  # only while the picture is shown

    case = svc.cases.get(res["cases"][0]["id"])
    sig = next(s for s in case["signals"] if s["detail"].get("variant") == "frame")
    assert sig["bank"] == "images" and 2.9 <= sig["detail"]["timestamp"] <= 3.5 and sig["distance"] <= 31
    item = case["items"][0]
    kept = item["metadata"]["frames"]
    assert item["media_type"] == "video" and item["has_media"] and kept[sig["detail"]["frame"]]["matches"][0]["bank"]
    assert svc.vault.exists(kept[0]["sha256"])

    rita = open_console("rita")
    page = rita.get(f"/console/cases/{case['id']}").text
    base = f"/console/items/{item['id']}/frames/0"
    assert f'src="{base}/preview"' in page and f'src="{base}/media"' not in page and "0:03." in page
    preview = rita.get(f"{base}/preview")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert svc.review.reveals(item["id"]) == []
    revealed = rita.post(f"{base}/reveal")
    assert revealed.status_code == 200 and f'src="{base}/media"' in revealed.text
    clear = rita.get(f"{base}/media")
    assert clear.status_code == 200 and clear.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(clear.content)).size == (160, 120)
    assert [r["actor"] for r in svc.review.reveals(item["id"])] == ["user:rita"]
    assert rita.get(f"/console/items/{item['id']}/frames/9/preview").status_code == 404
