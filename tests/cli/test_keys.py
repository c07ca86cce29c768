"""``safehold keys status | rotate | retire``: JSON for scripts, stable error codes, never a key on screen."""

from __future__ import annotations

import json


def test_rotate_status_and_retire_from_the_command_line(cli, settings, monkeypatch):
    monkeypatch.setenv("SAFEHOLD_KEY_CHECK_SECONDS", "0")
    cli("webhook", "add", "hook", "https://receiver.example/hook")
    first = json.loads(cli("keys", "status", "--which", "instance", "--json").output)
    assert first["sealed"] == {first["current"]: 1} and first["previous"] == []
    old_key = settings.key_file.read_text().strip()

    rotated = cli("keys", "rotate", "--which", "instance", "--batch", "1")
    assert "1 re-wrapped" in rotated.output and old_key not in rotated.output
    status = cli("keys", "status", "--which", "instance")
    assert f"previous: {first['current']}" in status.output and old_key not in status.output
    new_key = settings.key_file.read_text().strip()
    assert new_key != old_key and new_key not in status.output

    refused = cli("keys", "retire", "--which", "instance", "--key-id", "0" * 16, code=2)
    assert "keys.not_found" in refused.output
    assert "keys.invalid_kind" in cli("keys", "status", "--which", "nope", code=2).output
    retired = json.loads(cli("keys", "retire", "--which", "instance", "--key-id", first["current"], "--json").output)
    assert retired == {"which": "instance", "retired": first["current"], "previous": []}
    again = json.loads(cli("keys", "rotate", "--which", "evidence", "--rewrap-only", "--json").output)
    assert again["new_key"] is False and again["rewrapped"] == 0
