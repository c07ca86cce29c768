"""`safehold webhook|delivery|policy`: the same operations as the API, from a terminal."""

from __future__ import annotations

import json

import pytest

from tests.actions.conftest import Receiver


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def test_webhook_commands(cli, receiver):
    added = json.loads(cli("webhook", "add", "platform", receiver.url, "--event", "notify", "--json").stdout)
    assert added["secret"].startswith("whsec_") and added["events"] == ["notify"]
    plain = cli("webhook", "add", "other", "http://127.0.0.1:9/h").stdout
    secret = plain.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    listed = [json.loads(line) for line in cli("webhook", "list", "--json").stdout.splitlines()]
    assert [h["name"] for h in listed] == ["other", "platform"] and secret not in str(listed)
    assert "platform" in cli("webhook", "list").stdout
    assert cli("webhook", "rotate", "platform").stdout.strip().splitlines()[-1].startswith("whsec_")
    assert "ping queued" in cli("webhook", "test", "platform").stdout
    assert "1 delivery attempt" in cli("delivery", "run", "--once").stdout
    assert [r.headers["safehold-event"] for r in receiver.requests] == ["ping"]
    assert "removed webhook other" in cli("webhook", "remove", "other").stdout
    assert "webhook.not_found" in cli("webhook", "remove", "other", code=2).stderr
    assert "webhook.invalid_url" in cli("webhook", "add", "bad", "ftp://x/y", code=2).stderr


def test_delivery_commands(cli):
    cli("webhook", "add", "down", "http://127.0.0.1:1/h")
    cli("webhook", "test", "down")
    rows = [json.loads(line) for line in cli("delivery", "list", "--json").stdout.splitlines()]
    assert [(d["event"], d["status"]) for d in rows] == [("ping", "pending")]
    assert "ping" in cli("delivery", "list", "--status", "pending").stdout
    assert cli("delivery", "list", "--status", "dead", "--json").stdout == ""
    assert "queued again" in cli("delivery", "retry", rows[0]["id"]).stdout
    assert "delivery.not_found" in cli("delivery", "retry", 999, code=2).stderr
    assert "delivery.invalid_status" in cli("delivery", "list", "--status", "lost", code=2).stderr


def test_policy_commands(cli):
    out = cli("policy", "add", "auto-ncmec", "--trigger", "auto", "--match", '{"bank": "ncmec"}', "-a", "block_content")
    assert "auto-ncmec" in out.stdout
    names = [json.loads(line)["name"] for line in cli("policy", "list", "--json").stdout.splitlines()]
    assert names == ["auto-ncmec", "confirmed-csam", "confirmed-exploitation"]
    assert "confirmed-csam" in cli("policy", "list").stdout
    assert "policy.invalid" in cli("policy", "add", "x", "--match", "{oops", "-a", "notify", code=2).stderr
    assert "policy.invalid" in cli("policy", "add", "x", "-a", "nuke", "--match", '{"decision":"csam"}', code=2).stderr
    cli("policy", "remove", "auto-ncmec")
    assert "policy.not_found" in cli("policy", "remove", "auto-ncmec", code=2).stderr
