"""Videos end to end: a video added to a bank is found again after re-encoding (vPDQ), other videos are not."""

from __future__ import annotations

import pytest

from tests.media import H264, ffmpeg


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    original = ffmpeg(d / "a.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "4", *H264)
    return {
        "original": original,
        "reencoded": ffmpeg(
            d / "a.webm",
            "-i",
            str(d / "a.mp4"),
            "-vf",
            "scale=200:150",
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-b:v",
            "80k",
        ),  # fmt: skip
        "other": ffmpeg(d / "b.mp4", "-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=10", "-t", "4", *H264),
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_video_bank_and_scan(client, keys, videos):
    admin = keys["admin"]
    client.post("/v1/banks", json={"name": "videos"}, headers=admin)
    r = client.post("/v1/banks/videos/files", headers=admin, files={"file": ("a.mp4", videos["original"])})
    assert r.status_code == 201, r.text
    assert sorted(e["signal_type"] for e in r.json()["entries"]) == ["md5", "vpdq"]

    res = client.post("/v1/scan", headers=keys["platform"], files={"file": ("x.webm", videos["reencoded"])}).json()
    assert res["media"] == "video" and res["verdict"] == "match", res
    m = res["matches"][0]
    assert m["signal_type"] == "vpdq" and m["detail"]["query_match_percent"] >= 80

    res = client.post("/v1/scan", headers=keys["platform"], files={"file": ("y.mp4", videos["other"])}).json()
    assert res["verdict"] == "no_match"

    broken = videos["original"][: len(videos["original"]) // 2]
    res = client.post("/v1/scan", headers=keys["platform"], files={"file": ("z.mp4", broken)}).json()
    assert res["verdict"] == "unhashable" and res["error"]["code"].startswith("media."), res
