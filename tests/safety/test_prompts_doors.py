"""The safety prompts and the media policy over the API and the CLI (the console: tests/web/test_prompts_console.py)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_prompts_api_read_write_reset(client, keys):
    r = client.get("/v1/safety/prompts", params={"locale": "fr-CA"}, headers=keys["platform"])
    assert r.status_code == 200 and {p["locale"] for p in r.json()["prompts"]} == {"fr"}
    assert client.get("/v1/safety/prompts", headers=keys["auditor"]).status_code == 200  # stats.read
    assert client.get("/v1/safety/prompts", headers=keys["peer"]).status_code == 403
    body = {
        "title": "Bild verschwommen",
        "body": "Du entscheidest.",
        "help": [{"name": "Hilfe", "url": "https://example.org", "description": "Hilfe.", "regions": ["AT"]}],
    }
    assert client.put("/v1/safety/prompts/media.blurred/de-AT", json=body, headers=keys["platform"]).status_code == 403
    r = client.put("/v1/safety/prompts/media.blurred/de-at", json=body, headers=keys["admin"])
    assert r.status_code == 200 and r.json()["locale"] == "de-AT" and r.json()["updated_by"] == "apikey:test-admin"
    got = client.get("/v1/safety/prompts/media.blurred/de-AT", headers=keys["platform"]).json()
    assert got["shown"]["overridden"] and got["shown"]["help"][0]["name"] == "Hilfe" and got["bundled"] is None
    assert got["override"]["title"] == "Bild verschwommen"
    r = client.delete("/v1/safety/prompts/media.blurred/de-AT", headers=keys["admin"])
    assert r.status_code == 200 and r.json()["shown"]["locale"] == "de"
    r = client.delete("/v1/safety/prompts/media.blurred/de-AT", headers=keys["admin"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "prompt.not_found"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/safety/prompts/nope/en", {"title": "t", "body": "b"}),
        ("/v1/safety/prompts/media.blurred/english!", {"title": "t", "body": "b"}),
        ("/v1/safety/prompts/media.blurred/en", {"title": "t" * 121, "body": "b"}),
        ("/v1/safety/prompts/media.blurred/en", {"title": "   ", "body": "b"}),
        ("/v1/safety/prompts/media.blurred/en", {"title": "t", "body": "b", "help": [{"name": "x"}]}),
        ("/v1/safety/prompts/media.blurred/en", {"title": "t", "body": "b", "extra": 1}),
    ],
)
def test_prompts_api_refuses_bad_input(client, keys, path, body):
    r = client.put(path, json=body, headers=keys["admin"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"


def test_media_policy_api(client, keys):
    r = client.get("/v1/safety/media-policy", headers=keys["platform"])
    assert r.status_code == 200 and r.json()["policy"]["deliver"]["under13"]["action"] == "block"
    assert r.json()["updated_by"] is None
    new = {"classifier": "test_brightness", "label": "test_bright", "deliver": {"13-15": {"action": "block"}}}
    assert client.put("/v1/safety/media-policy", json=new, headers=keys["platform"]).status_code == 403
    r = client.put("/v1/safety/media-policy", json=new, headers=keys["admin"])
    assert r.status_code == 200 and r.json()["policy"]["deliver"] == {"13-15": {"action": "block", "threshold": None}}
    r = client.put("/v1/safety/media-policy", json={"deliver": {"13-15": {"action": "warn"}}}, headers=keys["admin"])
    assert r.status_code == 422


def test_prompts_and_policy_cli(cli, tmp_path):
    out = cli("prompts", "list", "--locale", "es", "--json").stdout
    assert {p["locale"] for p in json.loads(out)} == {"es"}
    assert "media.blurred" in cli("prompts", "list").stdout
    help_file = tmp_path / "help.json"
    help_file.write_text(json.dumps([{"name": "Linha", "url": "https://example.org", "description": "Ajuda."}]))
    cli(
        "prompts",
        "set",
        "send.warning",
        "pt-BR",
        "--title",
        "Pense",
        "--body",
        "Antes de enviar.",
        "--help-file",
        help_file,
    )
    shown = json.loads(cli("prompts", "show", "send.warning", "pt-BR").stdout)["shown"]
    assert shown["title"] == "Pense" and shown["help"][0]["name"] == "Linha" and shown["overridden"]
    assert json.loads(cli("prompts", "reset", "send.warning", "pt-BR").stdout)["shown"]["locale"] == "pt"
    bad = cli("prompts", "reset", "send.warning", "pt-BR", code=2)
    assert "prompt.not_found" in bad.output
    assert "prompt.unknown_key" in cli("prompts", "show", "nope", "en", code=2).output
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"classifier": "test_brightness", "label": "test_bright"}))
    assert json.loads(cli("media", "policy", "--set", policy).stdout)["policy"]["classifier"] == "test_brightness"
    assert json.loads(cli("media", "policy").stdout)["updated_by"].startswith("cli:")
    policy.write_text("{nope")
    assert "media.invalid_policy" in cli("media", "policy", "--set", policy, code=2).output
