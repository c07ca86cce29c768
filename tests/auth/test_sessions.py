"""Console sessions: only the token's hash is stored; sessions end on expiry, idleness, log-out and disabling."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select, update

from safehold.store.models import UserSession, utcnow


@pytest.fixture
def alice(svc):
    return svc.users.create("alice", "correct horse battery", "reviewer")


def _row(svc, token: str) -> UserSession | None:
    with svc.db.session() as s:
        return s.get(UserSession, hashlib.sha256(token.encode()).hexdigest())


def _age(svc, token: str, **ago) -> None:
    """Move a session's timestamps into the past instead of sleeping."""
    when = {k: utcnow() - v for k, v in ago.items()}
    with svc.db.session() as s:
        s.execute(
            update(UserSession).where(UserSession.id == hashlib.sha256(token.encode()).hexdigest()).values(**when)
        )


def test_start_and_resolve(svc, alice):
    new = svc.sessions.start(alice, ip="10.0.0.1", user_agent="Mozilla/5.0 " + "x" * 400)
    assert len(new.token) >= 43 and len(new.csrf_token) >= 43 and new.token != new.csrf_token
    hours = (new.expires_at - utcnow()) / dt.timedelta(hours=1)
    assert svc.settings.session_hours - 0.01 < hours <= svc.settings.session_hours

    row = _row(svc, new.token)
    assert row.ip == "10.0.0.1" and len(row.user_agent) == 256
    with svc.db.session() as s:  # the token itself is nowhere in the table
        assert new.token not in str([(r.id, r.csrf_token) for r in s.scalars(select(UserSession))])

    got = svc.sessions.resolve(new.token)
    assert got.user == alice and got.csrf_token == new.csrf_token and got.expires_at == new.expires_at
    assert got.session_id == row.id and got.user.principal().label == "user:alice"
    for bad in (None, "", "not-a-token", new.token + "x"):
        assert svc.sessions.resolve(bad) is None


def test_role_changes_apply_to_live_sessions(svc, alice):
    token = svc.sessions.start(alice).token
    svc.users.update("alice", role="senior_reviewer", actor="cli")
    assert svc.sessions.resolve(token).user.role == "senior_reviewer"


@pytest.mark.parametrize(
    "ago",
    [
        {"expires_at": dt.timedelta(seconds=1)},
        {"last_seen_at": dt.timedelta(minutes=61)},  # session_idle_minutes is 60
    ],
    ids=["expired", "idle"],
)
def test_lapsed_sessions_end(svc, alice, ago):
    token = svc.sessions.start(alice).token
    _age(svc, token, **ago)
    assert svc.sessions.resolve(token) is None
    assert _row(svc, token) is None  # deleted on sight


def test_last_seen_is_touched_at_most_once_a_minute(svc, alice):
    token = svc.sessions.start(alice).token
    _age(svc, token, last_seen_at=dt.timedelta(seconds=20))
    before = _row(svc, token).last_seen_at
    svc.sessions.resolve(token)
    assert _row(svc, token).last_seen_at == before

    _age(svc, token, last_seen_at=dt.timedelta(minutes=2))
    svc.sessions.resolve(token)
    assert utcnow() - _row(svc, token).last_seen_at < dt.timedelta(seconds=10)


def test_start_sweeps_the_users_lapsed_sessions(svc, alice):
    old = svc.sessions.start(alice).token
    _age(svc, old, expires_at=dt.timedelta(minutes=1))
    svc.sessions.start(alice)
    assert _row(svc, old) is None


def test_logout_and_logout_everywhere(svc, alice):
    one, two, three = (svc.sessions.start(alice).token for _ in range(3))
    svc.sessions.end(one)
    svc.sessions.end(one)  # twice is harmless, and recorded once
    assert svc.sessions.resolve(one) is None and svc.sessions.resolve(two) is not None
    logout = [r for r in svc.audit.list() if r["action"] == "auth.logout"]
    assert [(r["actor"], r["target"]) for r in logout] == [("user:alice", "user:alice")]

    assert svc.sessions.end_all(alice.id, actor="user:root") == 2
    assert svc.sessions.resolve(two) is None and svc.sessions.resolve(three) is None
    assert svc.sessions.end_all(alice.id) == 0 and svc.sessions.end_all(999) == 0
    rec = svc.audit.list()[-1]
    assert (rec["actor"], rec["action"], rec["detail"]) == ("user:root", "auth.logout_all", {"sessions_ended": 2})
