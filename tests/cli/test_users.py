"""``safehold user …``: the way in for the first admin, and back in after a lock-out or a lost password."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import update

from safehold.auth.users import SecondFactorNeeded
from safehold.cli import common
from safehold.store.models import User, utcnow

PW = "correct horse battery"


def test_user_commands(cli):
    cli("user", "create", "Root", "--role", "admin", "--display-name", "The Admin", "--password-stdin", input=PW + "\n")
    out = cli("user", "create", "alice", "--role", "reviewer", input=f"{PW}\n{PW}\n")
    assert "created user alice" in out.output and PW not in out.output
    for args, stdin, code in [
        (("alice", "--role", "reviewer"), f"{PW}\n{PW}\n", "user.exists"),
        (("bob", "--role", "reviewer", "--password-stdin"), "bob\n", "user.weak_password"),
        (("bob", "--role", "platform", "--password-stdin"), PW, "user.invalid_role"),
    ]:
        assert code in cli("user", "create", *args, input=stdin, code=2).output

    listing = json.loads(cli("user", "list", "--json").stdout)
    assert [(u["username"], u["role"], u["display_name"]) for u in listing] == [
        ("alice", "reviewer", ""),
        ("root", "admin", "The Admin"),
    ]
    assert "alice" in cli("user", "list").stdout

    cli("user", "set-role", "alice", "senior_reviewer")
    cli("user", "disable", "alice")
    assert "disabled" in cli("user", "list").stdout
    cli("user", "enable", "alice")
    assert "user.last_admin" in cli("user", "disable", "root", code=2).output
    assert "user.not_found" in cli("user", "unlock", "ghost", code=2).output

    users = common.services(load_index=False).users
    with users.db.session() as s:
        s.execute(update(User).values(locked_until=utcnow() + dt.timedelta(minutes=5)))
    assert json.loads(cli("user", "list", "--json").stdout)[0]["locked_until"]
    cli("user", "unlock", "alice")
    cli("user", "passwd", "alice", "--password-stdin", input="a new long passphrase\n")
    alice = users.authenticate("alice", "a new long passphrase")
    assert alice.role == "senior_reviewer" and not alice.disabled

    records = [r for r in users.audit.list(limit=1000) if r["action"].startswith("user.")]
    assert {r["actor"] for r in records} == {"cli"}


def test_arguments_are_checked_before_the_password_is_asked_for(cli):
    """A bad name, a bad role, a taken name or an unknown user is refused at once, with no password prompt."""
    cli("user", "create", "me", "--role", "admin", input=f"{PW}\n{PW}\n")  # two characters, as in the quick start
    for args, code in [
        (("create", "x", "--role", "admin"), "user.invalid_name"),
        (("create", "bob", "--role", "platform"), "user.invalid_role"),
        (("create", "ME", "--role", "reviewer"), "user.exists"),
        (("passwd", "ghost"), "user.not_found"),
    ]:
        result = cli("user", *args, input="", code=2)
        assert code in result.output and "Password" not in result.output, args


def test_a_weak_password_is_refused_before_it_is_typed_again(cli):
    result = cli("user", "create", "rita", "--role", "reviewer", input="short\n", code=2)
    assert "user.weak_password" in result.output and "Repeat it" not in result.output
    result = cli("user", "create", "rita", "--role", "reviewer", input=f"{PW}\n{PW}x\n", code=2)
    assert "cli.password_mismatch" in result.output
    cli("user", "create", "rita", "--role", "reviewer", input=f"{PW}\n{PW}\n")


def test_admin_is_enrolled_in_totp_at_create_and_enrol_reset_work(cli):
    from safehold.auth import totp

    out = cli("user", "create", "ada", "--role", "admin", "--password-stdin", input=PW + "\n").stdout
    assert "otpauth://totp/Safehold:ada?secret=" in out and "setup key:" in out and PW not in out
    secret = out.split("secret=")[1].split("&")[0]
    users = common.services(load_index=False).users
    assert users.get("ada").totp_enrolled
    with pytest.raises(SecondFactorNeeded) as need:  # the password alone is not a log-in for an admin
        users.authenticate("ada", PW)
    assert need.value.step == "totp"
    assert users.verify_totp(need.value.user.id, totp.code_at(secret)).username == "ada"

    assert "user.totp_enrolled" in cli("user", "totp", "enrol", "ada", code=2).output
    assert "removed" in cli("user", "totp", "reset", "ada").stdout
    assert not users.get("ada").totp_enrolled
    again = cli("user", "totp", "enrol", "ada").stdout
    assert "otpauth://" in again and again.split("secret=")[1].split("&")[0] != secret
    assert "user.not_found" in cli("user", "totp", "enrol", "ghost", code=2).output
    assert '"totp_enrolled": true' in cli("user", "list", "--json").stdout

    # A reviewer is not enrolled unless asked; --no-totp leaves an admin to enrol at first log-in.
    assert (
        "otpauth" not in cli("user", "create", "rita", "--role", "reviewer", "--password-stdin", input=PW + "\n").stdout
    )
    out = cli("user", "create", "ben", "--role", "admin", "--no-totp", "--password-stdin", input=PW + "\n").stdout
    assert "otpauth" not in out and "first log-in" in out
    actions = [r["action"] for r in users.audit.list(limit=1000) if r["action"].startswith("user.totp")]
    assert actions == ["user.totp_enrol", "user.totp_reset", "user.totp_enrol"]
