"""``safehold exchange``: configure, fetch and inspect exchanges; credentials never printed."""

from __future__ import annotations

import hashlib
import json

SECRET = "cli-secret-value-42"


def test_add_fetch_status_disable_remove(cli, svc):
    svc.banks.create("feeds")
    svc.settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    values = [hashlib.md5(str(i).encode()).hexdigest() for i in range(3)]
    (svc.settings.feeds_dir / "list.txt").write_text("\n".join(values) + "\n")
    creds = svc.settings.home / "creds.json"
    creds.write_text(json.dumps({"bearer_token": SECRET}))
    outputs = []
    options = ("--setting", "url=list.txt", "-s", "format=list", "-s", "signal_type=md5")
    added = cli("exchange", "add", "local", "--type", "feed", "--bank", "feeds", *options,
                "--credentials-file", creds, "--every", "3600")  # fmt: skip
    outputs.append(added.output)
    assert "local" in added.output and "set (sealed)" in added.output
    fetched = cli("exchange", "fetch", "local")
    outputs.append(fetched.output)
    assert "3 added" in fetched.output
    assert {e["value"] for e in svc.banks.entries("feeds")} == set(values)
    status = cli("exchange", "status", "local", "--json")
    outputs.append(status.output)
    shown = json.loads(status.output)
    assert shown["totals"]["added"] == 3 and shown["has_credentials"] is True
    outputs.append(cli("exchange", "list").output)
    outputs.append(cli("exchange", "list", "--json").output)
    outputs.append(cli("exchange", "update", "local", "--credential", f"bearer_token={SECRET}x").output)
    assert "disabled" in cli("exchange", "disable", "local").output
    assert svc.exchanges.get("local")["enabled"] is False
    cli("exchange", "enable", "local")
    types = cli("exchange", "types").output
    assert "feed" in types and "bearer_token" in types
    cli("exchange", "remove", "local", "--yes")
    assert svc.exchanges.list() == []
    assert not any(SECRET in o for o in outputs)


def test_errors_are_codes_and_never_echo_secrets(cli, svc):
    svc.banks.create("feeds")
    bad = cli("exchange", "add", "x", "--type", "feed", "--bank", "feeds", "-s", "url=list.txt",
              "--credential", f"password={SECRET}", code=2)  # fmt: skip
    assert "exchange.invalid_credentials" in bad.output and SECRET not in bad.output
    assert "exchange.unknown_type" in cli("exchange", "add", "x", "--type", "nope", "--bank", "feeds", code=2).output
    assert "cli.usage" in cli("exchange", "add", "x", "--type", "feed", "--bank", "feeds", "-s", "url", code=2).output
    assert "exchange.not_found" in cli("exchange", "fetch", "missing", code=2).output
    svc.exchanges.create("gone", "feed", "feeds", {"url": "nothing-here.txt"})
    failed = cli("exchange", "fetch", "gone", code=2)
    assert "exchange.unavailable" in failed.output
    assert "exchange.unavailable" in cli("exchange", "status", "gone").output
