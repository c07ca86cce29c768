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


def test_secrets_never_travel_in_argv(cli, tmp_path, monkeypatch):
    """`webhook add/rotate --secret-out` write the secret to a 0600 file; `webhook receive` reads it from that
    file, the environment or a hidden prompt, and has no option that would put it on the command line."""
    from safehold.actions import receiver

    secret_file = tmp_path / "webhook-secret"
    added = cli("webhook", "add", "platform", "http://127.0.0.1:9/h", "--secret-out", secret_file).stdout
    secret = secret_file.read_text().strip()
    assert secret.startswith("whsec_") and secret not in added and str(secret_file) in added
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret_file.chmod(0o644)
    cli("webhook", "rotate", "platform", "--secret-out", secret_file)
    rotated = secret_file.read_text().strip()
    assert rotated != secret and secret_file.stat().st_mode & 0o777 == 0o600

    heard = []

    class Server:  # stands in for the HTTP server: records the secret, then stops as Ctrl-C would
        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    monkeypatch.setattr(receiver, "make_server", lambda host, port, s, on_delivery: heard.append(s) or Server())
    cli("webhook", "receive", "--secret-file", secret_file)
    monkeypatch.setenv("SAFEHOLD_WEBHOOK_SECRET", "whsec_from_env")
    cli("webhook", "receive")
    monkeypatch.delenv("SAFEHOLD_WEBHOOK_SECRET")
    prompted = cli("webhook", "receive", input="whsec_typed\n").output
    assert heard == [rotated, "whsec_from_env", "whsec_typed"] and "whsec_typed" not in prompted
    assert "cli.path_not_found" in cli("webhook", "receive", "--secret-file", tmp_path / "none", code=2).stderr
    assert "No such option" in cli("webhook", "receive", "--secret", rotated, code=2).output


def test_the_receiver_prints_an_actions_params():
    """docs/live.md: the receiver shows an interrupt's stream and capture time."""
    from safehold.cli.actions import _delivery_line

    body = {"event": "action.interrupt", "case": {"id": 1, "content_id": "live:s-1", "account_id": "u-9"},
            "action": {"kind": "interrupt", "params": {"stream_id": "s-1", "captured_at": 1.5}}}  # fmt: skip
    line = _delivery_line(body)
    assert line.startswith("action.interrupt case 1 content live:s-1 account u-9")
    assert '"captured_at": 1.5' in line and '"stream_id": "s-1"' in line
    assert "params" not in _delivery_line({"event": "action.notify", "case": {"id": 2}})


def test_the_bundled_receiver_prints_outcomes_and_strangers_text_as_text(capsys):
    """Found walking issue 14: `webhook receive` printed `case None` for a report's outcome, and read a content id
    typed in the public report form as Rich markup (`[/]` raised, the delivery failed)."""
    from safehold.actions.receiver import Delivery
    from safehold.cli import actions

    report = {"id": 7, "reference": "tkt-1", "outcome": "actioned", "content_id": "[/]", "account_id": "[red]a"}
    actions._show_delivery(Delivery(True, "k1", {"event": "user_report.decided", "user_report": report}))
    appeal = {"id": 2, "case_id": 4, "status": "overturned", "reference": "appeal-1", "account_id": "a"}
    actions._show_delivery(Delivery(True, "k2", {"event": "appeal.decided", "appeal": appeal}))
    printed = capsys.readouterr().out
    assert "user_report 7 actioned reference tkt-1" in printed and "content [/] account [red]a" in printed
    assert "appeal 2 overturned reference appeal-1 case 4" in printed
