"""``safehold rules …``: the rule life cycle from the command line, in JSON."""

from __future__ import annotations

import json


def test_rules_cli_life_cycle(cli):
    effect = '{"type": "open_case", "priority": "P2"}'
    created = json.loads(
        cli("rules", "create", "g", "grooming > 0.8", "--effect", effect, "--actor", "alice", "--json").output
    )
    assert created["status"] == "draft"
    cli("rules", "edit", "g", "--expression", "grooming > 0.7", "--actor", "alice")
    assert "+grooming > 0.7" in cli("rules", "diff", "g").output
    cli("rules", "shadow", "g", "--actor", "alice")
    cli("rules", "enable", "g", "--actor", "alice", code=2)  # not approved
    cli("rules", "approve", "g", "--actor", "alice", code=2)  # its author
    cli("rules", "approve", "g", "--actor", "bob")
    assert json.loads(cli("rules", "enable", "g", "--actor", "alice", "--json").output)["status"] == "live"
    listed = json.loads(cli("rules", "list", "--json").output)
    assert [(r["name"], r["status"], r["active_version"]) for r in listed] == [("g", "live", 2)]
    assert json.loads(cli("rules", "backtest", "g", "--days", "3", "--json").output)["detections"] == 0
    assert "v2 by alice" in cli("rules", "show", "g").output
    assert json.loads(cli("rules", "disable", "g", "--json").output)["status"] == "disabled"
    cli("rules", "create", "bad", "grooming >", "--effect", effect, code=2)


def test_named_lists_from_the_cli(cli, tmp_path):
    items = tmp_path / "watched.txt"
    items.write_text("u1\nu2\n")
    assert json.loads(cli("rules", "put-list", "watched", items, "--actor", "alice", "--json").output)["items"] == 2
    label = '{"type": "add_label", "label": "w"}'
    cli("rules", "create", "w", "subject.account_id in lists.watched", "--effect", label, "--actor", "alice")
    cli("rules", "approve", "w", "--actor", "bob")
    cli("rules", "enable", "w", "--actor", "alice")
    items.write_text("u1\nu2\nu3\n")
    assert "waiting for approval (read by w)" in cli("rules", "put-list", "watched", items, "--actor", "alice").output
    cli("rules", "approve-list", "watched", "--actor", "alice", code=2)  # its author
    assert json.loads(cli("rules", "approve-list", "watched", "--actor", "bob", "--json").output)["items"] == 3
    assert "watched" in cli("rules", "lists").output
