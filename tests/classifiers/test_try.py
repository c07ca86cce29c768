"""Trying the classifiers on a file, over the API (``POST /v1/classify``) and the CLI (``safehold classifier run``,
``available``): every enabled classifier's scores, a video's per frame, bounded like a scan, nothing recorded."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from safehold.config import Settings, get_settings
from safehold.store.models import Case
from tests.media import H264, encode, ffmpeg, jpeg, photo


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        classifiers=["opennsfw", "test_brightness"],
        tarpit_max_delay_seconds=0,
        max_upload_bytes=2_000_000,
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return ffmpeg(
        tmp_path_factory.mktemp("v") / "v.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "3", *H264
    )


def _cases(svc) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(Case))


def test_classify_scores_an_image_with_every_enabled_classifier_and_records_nothing(client, keys, svc):
    white = encode(photo(1).point(lambda v: 250), "PNG")
    r = client.post("/v1/classify", headers=keys["platform"], files={"file": ("w.png", white)})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["media"] == "image" and out["name"] == "w.png" and out["size"] == len(white) and "frames" not in out
    by = {c["classifier"]: c for c in out["classifications"]}
    assert set(by) == {"opennsfw", "test_brightness"}
    assert by["opennsfw"]["scores"][0]["label"] == "explicit" and by["opennsfw"]["hits"] == []
    assert by["test_brightness"]["hits"] == ["test_bright"]  # a hit, and still no case
    assert _cases(svc) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_classify_scores_a_videos_frames(client, keys, video):
    r = client.post("/v1/classify", headers=keys["reviewer"], files={"file": ("v.mp4", video)})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["media"] == "video" and [f["timestamp"] for f in out["frames"]] == [0.5, 1.5, 2.5]
    for c in out["classifications"]:
        per_frame = [
            (fc["scores"][0]["score"], f["timestamp"])
            for f in out["frames"]
            for fc in f["classifications"]
            if fc["classifier"] == c["classifier"]
        ]
        [s] = c["scores"]
        assert (s["score"], s["detail"]["timestamp"]) in per_frame and s["score"] == max(per_frame)[0]
        assert s["detail"]["frames"] == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_classify_refuses_bad_files_with_the_scans_codes(client, keys):
    h = keys["platform"]
    for data, status, code in (
        (jpeg(2)[:400], 400, "media.truncated"),
        (b"hello, not an image", 400, "media.unsupported_format"),
        (b"", 400, "media.empty"),
        (b"\x00" * 2_000_001, 413, "media.too_large"),
    ):
        r = client.post("/v1/classify", headers=h, files={"file": ("x.jpg", data)})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    r = client.post("/v1/classify", headers=h, files={"other": ("x.jpg", jpeg(2))})
    assert r.json()["error"]["code"] == "request.missing_file"
    r = client.post("/v1/classify", headers=h, json={"url": "http://example.org/"})
    assert r.json()["error"]["code"] == "request.missing_file"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_classify_needs_the_scan_permission(client, keys):
    assert client.post("/v1/classify", files={"file": ("x.jpg", jpeg(3, (32, 32)))}).status_code == 401
    r = client.post("/v1/classify", headers=keys["auditor"], files={"file": ("x.jpg", jpeg(3))})
    assert r.status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_classify_without_a_classifier_says_how_to_enable_one(tmp_path, database_url):
    from fastapi.testclient import TestClient

    from safehold.app import create_app
    from safehold.services import Services

    svc = Services(Settings(home=tmp_path / "h2", database_url=database_url, tarpit_max_delay_seconds=0))
    try:
        key = svc.apikeys.create("t", "platform").token
        with TestClient(create_app(svc, background=False)) as c:
            r = c.post("/v1/classify", headers={"Authorization": f"Bearer {key}"}, files={"file": ("x.jpg", jpeg(4))})
        assert r.status_code == 409 and r.json()["error"]["code"] == "classifier.none_enabled"
        assert "SAFEHOLD_CLASSIFIERS" in r.json()["error"]["message"]
    finally:
        svc.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_scores_local_files(cli, tmp_path, video, monkeypatch):
    monkeypatch.setenv("SAFEHOLD_CLASSIFIERS", "opennsfw")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg(5))
    (tmp_path / "in" / "b.mp4").write_bytes(video)
    (tmp_path / "in" / "c.jpg").write_bytes(jpeg(5)[:300])
    out = cli("classifier", "run", tmp_path / "in").output
    lines = [line.split("\t") for line in out.splitlines() if "\t" in line]
    assert [(row[2], row[3], row[5].rsplit("/", 1)[-1]) for row in lines] == [
        ("opennsfw", "explicit", "a.jpg"),
        ("opennsfw", "explicit", "b.mp4"),
    ]
    assert (
        lines[1][4].endswith("s") and "media.truncated" in out and "3 file(s): 0 hit, 2 no hit, 1 not classified" in out
    )
    rows = [
        json.loads(x)
        for x in cli(
            "classifier", "run", "--json", "-c", "test_brightness", tmp_path / "in" / "a.jpg"
        ).stdout.splitlines()
    ]
    assert [c["classifier"] for c in rows[0]["classifications"]] == ["test_brightness"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_without_a_classifier_and_the_list_of_available_ones(cli, tmp_path, monkeypatch):
    (tmp_path / "a.jpg").write_bytes(jpeg(6))
    monkeypatch.delenv("SAFEHOLD_CLASSIFIERS", raising=False)
    assert "classifier.none_enabled" in cli("classifier", "run", tmp_path / "a.jpg", code=2).output
    monkeypatch.setenv("SAFEHOLD_CLASSIFIERS", "opennsfw")
    get_settings.cache_clear()  # the settings of a new process
    rows = {r["name"]: r for r in json.loads(cli("classifier", "available", "--json").stdout)}
    assert rows["opennsfw"]["enabled"] and not rows["test_brightness"]["enabled"]
    assert rows["opennsfw"]["labels"] == ["explicit"] and rows["opennsfw"]["source"] == "built-in"
    assert "opennsfw\tenabled\tbuilt-in" in cli("classifier", "available").stdout
