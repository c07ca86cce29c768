"""``POST /v1/media/check`` and ``safehold media check``: the same service behind a bounded multipart upload."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from safehold.config import Settings
from tests.media import encode

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WHITE = encode(Image.new("RGB", (64, 64), "white"))


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        classifiers=["test_brightness"],
        tarpit_max_delay_seconds=0,
        max_upload_bytes=200_000,
    )


@pytest.fixture
def ready(svc):
    svc.media_check.set_policy({"classifier": "test_brightness", "label": "test_bright"}, "test")
    svc.ages.record("test", "teen", "platform", band="13-15")
    svc.ages.record("test", "grown", "platform", band="adult")


def _post(client, headers, data=WHITE, **fields):
    return client.post("/v1/media/check", data=fields, files={"file": ("i.png", data, "image/png")}, headers=headers)


@pytest.mark.usefixtures("ready")
def test_the_route_decides_and_opens_a_case(client, keys, svc):
    r = _post(
        client, keys["platform"], sender="grown", recipient="teen", stage="deliver", locale="fr", content_id="m-1"
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["decision"] == "blur" and out["recipient_band"] == "13-15" and out["sender_band"] == "adult"
    assert [p["key"] for p in out["prompts"]] == ["media.blurred", "help.sextortion"]
    assert out["prompts"][0]["title"] == "Cette image pourrait montrer de la nudité"
    assert svc.cases.get(out["case_id"])["signals"][0]["detail"]["age"]["reasons"] == ["recipient_minor"]
    warn = _post(client, keys["platform"], sender="teen", stage="send").json()
    assert warn["decision"] == "warn" and warn["recipient_band"] is None
    adults = _post(client, keys["platform"], sender="grown", recipient="grown").json()
    assert adults["decision"] == "allow" and not adults["classified"]


@pytest.mark.usefixtures("ready")
def test_the_route_refuses_cleanly(client, keys):
    assert _post(client, keys["reviewer"], sender="grown", recipient="teen").status_code == 403
    r = _post(client, keys["platform"], data=b"not an image at all", sender="grown", recipient="teen")
    assert r.status_code == 400 and r.json()["error"]["code"].startswith("media.")
    r = _post(client, keys["platform"], sender="grown")
    assert r.status_code == 422 and r.json()["error"]["code"] == "media.invalid_check"
    r = _post(client, keys["platform"], sender="grown", recipient="teen", stage="later")
    assert r.status_code == 422 and r.json()["error"]["code"] == "media.invalid_check"
    r = client.post("/v1/media/check", json={"sender": "grown"}, headers=keys["platform"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "request.missing_file"
    r = _post(client, keys["platform"], data=b"\0" * 300_000, sender="grown", recipient="teen")
    assert r.status_code == 413 and r.json()["error"]["code"] in ("media.too_large", "request.too_large")


def test_an_unconfigured_classifier_is_a_503(client, keys, svc):
    svc.ages.record("test", "teen", "platform", band="13-15")
    r = _post(client, keys["platform"], sender="grown", recipient="teen")
    assert r.status_code == 503 and r.json()["error"]["code"] == "media.classifier_unavailable"


@pytest.mark.usefixtures("ready")
def test_the_cli_check(monkeypatch, cli, tmp_path):
    monkeypatch.setenv("SAFEHOLD_CLASSIFIERS", "test_brightness")
    monkeypatch.setenv("SAFEHOLD_MAX_UPLOAD_BYTES", "200000")
    image = tmp_path / "white.png"
    image.write_bytes(WHITE)
    out = json.loads(cli("media", "check", image, "--sender", "grown", "--recipient", "teen", "--json").stdout)
    assert out["decision"] == "blur" and out["case_id"] is not None
    text = cli("media", "check", image, "--sender", "teen", "--stage", "send").stdout
    assert text.startswith("warn") and "[send.warning]" in text
    assert "cli.path_not_found" in cli("media", "check", tmp_path / "none", "--sender", "x", code=2).output
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 300_000)
    assert "media.too_large" in cli("media", "check", big, "--sender", "grown", "--recipient", "teen", code=2).output
