"""Console users: validation, argon2id log-in, the same answer for unknown names, disabling.
(Throttling, bounded failure records and TOTP: tests/auth/test_login_security.py.)

Each argon2 hash or verification costs tens of milliseconds, so these tests count theirs.
"""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from sqlalchemy import update

from safehold.errors import SafeholdError
from safehold.store.models import User, utcnow

PW = "correct horse battery"


def _error(fn, *args, **kw) -> SafeholdError:
    with pytest.raises(SafeholdError) as exc:
        fn(*args, **kw)
    return exc.value


def _actions(svc, prefix: str) -> list[dict]:
    return [r for r in svc.audit.list(limit=1000) if r["action"].startswith(prefix)]


def _set(svc, username: str, **values) -> None:
    with svc.db.session() as s:
        s.execute(update(User).where(User.username == username).values(**values))


def test_create_validates_and_never_exposes_the_hash(svc):
    for name in ("a", "bad name", "x" * 65, "ünï", ""):
        assert _error(svc.users.create, name, PW, "reviewer").code == "user.invalid_name", name
    for name, pw in [
        ("alice.b", "short"),
        ("alice.b", ""),
        ("alice.b", "a" * 20),
        ("alice.b", "x" * 1025),
        ("long.username", "Long.Username"),
    ]:
        assert _error(svc.users.create, name, pw, "reviewer").code == "user.weak_password", pw
    for role in ("platform", "root", ""):
        assert _error(svc.users.create, "alice.b", PW, role).code == "user.invalid_role", role

    u = svc.users.create("  Alice.B ", PW, "reviewer", display_name="Alice B", actor="cli")
    assert (u.username, u.role, u.display_name, u.disabled, u.locked_until) == (
        "alice.b",
        "reviewer",
        "Alice B",
        False,
        None,
    )
    assert u.principal().label == "user:alice.b" and u.principal().user_id == u.id
    err = _error(svc.users.create, "ALICE.B", PW, "admin")
    assert (err.code, err.status) == ("user.exists", 409)

    assert svc.users.get("Alice.B") == u == svc.users.get_by_id(u.id)
    assert [x.username for x in svc.users.list()] == ["alice.b"]
    assert _error(svc.users.get, "bob").code == "user.not_found"
    assert _error(svc.users.get_by_id, 999).status == 404
    assert "password" not in str(u.to_dict()) and "argon2" not in str(u.to_dict())

    [rec] = _actions(svc, "user.")
    assert (rec["actor"], rec["action"], rec["target"]) == ("cli", "user.create", "user:alice.b")
    assert rec["detail"] == {"role": "reviewer", "display_name": "Alice B"}
    with svc.db.session() as s:
        assert s.get(User, u.id).password_hash.startswith("$argon2id$")


def test_login_and_one_answer_for_unknown_names(svc):
    svc.users.create("alice", PW, "reviewer")
    u = svc.users.authenticate("Alice", PW, ip="10.0.0.1")
    assert u.username == "alice" and u.last_login_at is not None

    wrong = _error(svc.users.authenticate, "alice", "not the password", ip="10.0.0.2")
    unknown = _error(svc.users.authenticate, "nobody", PW, ip="10.0.0.3")
    assert (wrong.code, wrong.status, wrong.message) == (unknown.code, unknown.status, unknown.message)
    assert wrong.code == "auth.invalid_credentials" and wrong.status == 401

    login, failed, unknown_rec = _actions(svc, "auth.")
    assert (login["actor"], login["action"], login["detail"]["ip"]) == ("user:alice", "auth.login", "10.0.0.1")
    assert failed["actor"] == "anonymous" and failed["target"] == "user:alice"
    assert failed["detail"] == {"ip": "10.0.0.2", "reason": "password"}
    # An unknown name is not written down: it may be a password typed into the wrong field.
    assert unknown_rec["target"] == "user:?" and unknown_rec["detail"] == {"ip": "10.0.0.3", "unknown_user": True}
    # A success resets the count.
    assert svc.users.authenticate("alice", PW).username == "alice"
    with svc.db.session() as s:
        assert s.query(User).one().failed_logins == 0


def test_disabled_user(svc):
    svc.users.create("root", PW, "admin")
    svc.users.create("alice", PW, "reviewer")
    alice = svc.users.authenticate("alice", PW)
    token = svc.sessions.start(alice).token

    u = svc.users.update("alice", disabled=True, actor="user:root")
    assert u.disabled and svc.sessions.resolve(token) is None
    rec = _actions(svc, "user.update")[-1]
    assert rec["detail"] == {"changes": {"disabled": [False, True]}, "sessions_ended": 1}
    # A wrong password gets the usual answer: only someone who knows the password learns the account is disabled.
    assert _error(svc.users.authenticate, "alice", "not the password").code == "auth.invalid_credentials"
    err = _error(svc.users.authenticate, "alice", PW)
    assert (err.code, err.status) == ("auth.disabled", 403)

    svc.users.update("alice", disabled=False, actor="user:root")
    assert svc.users.authenticate("alice", PW).username == "alice"


def test_update_and_the_last_admin(svc):
    svc.users.create("root", PW, "admin")
    for change in ({"role": "reviewer"}, {"disabled": True}):
        err = _error(svc.users.update, "root", actor="cli", **change)
        assert (err.code, err.status) == ("user.last_admin", 409)
    assert _error(svc.users.update, "root", role="platform", actor="cli").code == "user.invalid_role"
    assert _error(svc.users.update, "ghost", role="admin", actor="cli").code == "user.not_found"

    before = len(_actions(svc, "user.update"))
    svc.users.update("root", role="admin", display_name=None, actor="cli")  # nothing changes: no record
    assert len(_actions(svc, "user.update")) == before

    svc.users.create("second", PW, "admin")
    u = svc.users.update("root", role="auditor", display_name="Former admin", actor="user:second")
    assert (u.role, u.display_name) == ("auditor", "Former admin")
    rec = _actions(svc, "user.update")[-1]
    assert rec["actor"] == "user:second" and rec["target"] == "user:root"
    assert rec["detail"] == {"changes": {"role": ["admin", "auditor"], "display_name": ["", "Former admin"]}}


def test_set_password_ends_sessions_and_clears_an_old_lockout(svc):
    svc.users.create("alice", PW, "reviewer")
    user = svc.users.get("alice")
    token = svc.sessions.start(user).token
    _set(svc, "alice", failed_logins=3, locked_until=utcnow() + dt.timedelta(minutes=5))

    assert _error(svc.users.set_password, "alice", "alice", actor="cli").code == "user.weak_password"
    svc.users.set_password("alice", "a new long passphrase", actor="cli")
    assert svc.sessions.resolve(token) is None
    assert _actions(svc, "user.password")[0]["detail"] == {"sessions_ended": 1}
    assert _error(svc.users.authenticate, "alice", PW).code == "auth.invalid_credentials"
    assert svc.users.authenticate("alice", "a new long passphrase").username == "alice"


def test_old_parameters_are_rehashed_at_login(svc):
    svc.users.create("alice", PW, "reviewer")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PW)
    _set(svc, "alice", password_hash=weak)
    svc.users.authenticate("alice", PW)
    with svc.db.session() as s:
        stored = s.query(User).one().password_hash
    assert stored != weak and not svc.users.hasher.check_needs_rehash(stored)
    assert _actions(svc, "auth.login")[-1]["detail"]["rehashed"] is True


def test_wellness_prefs_are_stored_as_given(svc):
    u = svc.users.create("alice", PW, "reviewer")
    svc.users.set_wellness(u.id, {"blur": True, "daily_cap": 100}, actor="user:alice")
    assert svc.users.get("alice").wellness == {"blur": True, "daily_cap": 100}
    assert _actions(svc, "user.wellness")[0]["detail"] == {"prefs": {"blur": True, "daily_cap": 100}}
    assert _error(svc.users.set_wellness, 999, {}, actor="x").code == "user.not_found"
