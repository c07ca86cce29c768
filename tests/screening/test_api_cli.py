"""``/v1/screening`` and ``safehold screening``: the same operations, permission-checked, credentials taken and
never answered back."""

from __future__ import annotations

import json

import pytest

from tests.media import jpeg
from tests.screening.conftest import KEY


def test_the_api_configures_tests_and_shows_a_service(client, keys, google):
    body = {"name": "gcs", "type": "google_csai", "settings": {"url": google.url}, "credentials": {"api_key": KEY}}
    assert client.post("/v1/screening/services", json=body, headers=keys["reviewer"]).status_code == 403
    made = client.post("/v1/screening/services", json=body, headers=keys["admin"])
    assert made.status_code == 201, made.text
    assert made.json()["has_credentials"] and KEY not in made.text and made.json()["threshold"] == 0.7

    again = client.post("/v1/screening/services", json=body, headers=keys["admin"])
    assert (again.status_code, again.json()["error"]["code"]) == (409, "screening.exists")
    bad = client.post("/v1/screening/services", json={**body, "name": "x", "settings": {"url": "http://a.example"}},
                      headers=keys["admin"])  # fmt: skip
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "screening.invalid_settings")
    unknown = client.post("/v1/screening/services", json={**body, "name": "y", "type": "nope"}, headers=keys["admin"])
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "screening.unknown_type")

    listed = client.get("/v1/screening/services", headers=keys["admin"])
    assert [s["name"] for s in listed.json()] == ["gcs"] and KEY not in listed.text
    tested = client.post("/v1/screening/services/gcs/test", headers=keys["admin"])
    assert tested.status_code == 200 and tested.json()["checked"] is True

    changed = client.patch("/v1/screening/services/gcs", json={"threshold": 0.5}, headers=keys["admin"])
    assert changed.json()["threshold"] == 0.5 and changed.json()["threshold_overridden"]
    off = client.post("/v1/screening/services/gcs/disable", headers=keys["admin"])
    assert off.json()["enabled"] is False
    assert client.post("/v1/screening/services/gcs/enable", headers=keys["admin"]).json()["enabled"] is True
    queue = client.get("/v1/screening/queue", headers=keys["admin"]).json()
    assert queue["queued"] == 0 and queue["max_jobs"] == 10_000
    assert client.get("/v1/screening/types", headers=keys["admin"]).json()[0]["type"] == "google_csai"
    assert client.delete("/v1/screening/services/gcs", headers=keys["admin"]).json() == {"deleted": "gcs"}
    gone = client.get("/v1/screening/services/gcs", headers=keys["admin"])
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "screening.not_found")


def test_a_refused_key_answers_its_code(client, keys, svc, google):
    svc.screening.create("gcs", "google_csai", {"url": google.url}, {"api_key": "wrong-key-123456"})
    tested = client.post("/v1/screening/services/gcs/test", headers=keys["admin"])
    assert (tested.status_code, tested.json()["error"]["code"]) == (502, "screening.auth")
    assert "wrong-key" not in tested.text


def test_the_cli_does_the_same(cli, google, tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"api_key": KEY}))
    added = cli("screening", "add", "gcs", "--type", "google_csai", "-s", f"url={google.url}",
                "--credentials-file", creds, "--threshold", "0.5")  # fmt: skip
    assert "credentials set (sealed)" in added.output and KEY not in added.output
    shown = json.loads(cli("screening", "show", "gcs", "--json").output)
    assert shown["threshold"] == 0.5 and shown["has_credentials"]
    assert '"checked": true' in cli("screening", "test", "gcs").output
    cli("screening", "disable", "gcs")
    assert "gcs" in cli("screening", "list").output
    cli("screening", "update", "gcs", "--default-threshold")
    assert json.loads(cli("screening", "show", "gcs", "--json").output)["threshold"] == 0.7
    cli("screening", "remove", "gcs")
    assert "screening.not_found" in cli("screening", "show", "gcs", code=2).output
    assert "screening.no_standin" in cli("screening", "stand-in", "nope", code=2).output


def test_the_stand_in_answers_the_same_image_the_same_way(google):
    image = jpeg(3)
    assert google.priority(image) == google.priority(image)


@pytest.mark.parametrize("type_name", ["google_csai", "safer_predict", "arachnid_shield"])
def test_every_service_type_has_a_stand_in_the_cli_serves(cli, svc, tmp_path, monkeypatch, type_name):
    """``safehold screening stand-in TYPE`` writes settings and credentials a service added with them can use
    (``screening test`` passes against the stand-in while it serves)."""
    import signal

    from safehold.screening import rehearsal

    checked = {}

    def serve_once(sig, handler):  # instead of waiting for Ctrl-C: check the stand-in, then stop it
        settings = json.loads((tmp_path / f"{type_name}-settings.json").read_text())
        credentials = json.loads((tmp_path / f"{type_name}-credentials.json").read_text())
        svc.screening.create("rehearsal", type_name, settings, credentials)
        checked.update(svc.screening.test("rehearsal"))
        handler(sig, None)

    monkeypatch.setattr(signal, "signal", serve_once)
    ran = cli("screening", "stand-in", type_name, "--dir", tmp_path)
    assert f"{type_name} stand-in on http://127.0.0.1:" in ran.output
    assert checked["checked"] is True and type_name in rehearsal.STANDINS
