"""API keys: authentication is read-only; the last-used time is written at most once a minute."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from safehold.errors import SafeholdError
from safehold.store.models import ApiKey


def test_authenticate_reports_a_stale_last_use_and_touch_records_it(svc):
    created = svc.apikeys.create("t", "platform")
    who, stale = svc.apikeys.authenticate(created.token)
    assert who.role == "platform" and stale, "never used: stale"
    svc.apikeys.touch(who.key_prefix)
    with svc.db.session() as s:
        first = s.query(ApiKey).filter_by(prefix=who.key_prefix).one().last_used_at
    assert first is not None
    assert svc.apikeys.authenticate(created.token)[1] is False, "just used: not stale"
    svc.apikeys.touch(who.key_prefix)  # within the minute: no write
    with svc.db.session() as s:
        assert s.query(ApiKey).filter_by(prefix=who.key_prefix).one().last_used_at == first


def test_touch_is_a_hint_a_locked_store_skips_it(svc, monkeypatch, caplog):
    """A writer holding the store (SQLite's lock held past its busy timeout) must not fail the request that
    used the key: the last-use write is skipped with a warning, and the next request tries again."""
    created = svc.apikeys.create("t", "platform")
    who, _ = svc.apikeys.authenticate(created.token)

    def locked():
        raise OperationalError("UPDATE api_keys …", {}, Exception("database is locked"))

    monkeypatch.setattr(svc.apikeys.db, "session", locked)
    svc.apikeys.touch(who.key_prefix)
    assert "last use not recorded (OperationalError)" in caplog.text
    assert created.token not in caplog.text


def test_bad_and_revoked_keys_are_refused_alike(svc):
    created = svc.apikeys.create("t", "platform")
    for token in ("", "sh_nope", created.token + "x"):
        with pytest.raises(SafeholdError) as exc:
            svc.apikeys.authenticate(token)
        assert exc.value.code == "auth.invalid_key"
    svc.apikeys.revoke(created.prefix, actor="t")
    with pytest.raises(SafeholdError):
        svc.apikeys.authenticate(created.token)


def test_a_remembered_key_is_refused_at_once_after_revocation_and_elsewhere_within_the_cache_time(
    svc, settings, monkeypatch
):
    from safehold.auth import apikeys
    from safehold.services import Services

    created = svc.apikeys.create("t", "platform")
    other = Services(settings, load_index=False)
    try:
        assert svc.apikeys.authenticate(created.token)[0].role == "platform"
        assert other.apikeys.authenticate(created.token)[0].role == "platform"  # remembered there too
        svc.apikeys.revoke(created.prefix, actor="t")
        with pytest.raises(SafeholdError):
            svc.apikeys.authenticate(created.token)  # the revoking process forgets at once
        later = apikeys._clock() + apikeys.AUTH_CACHE_SECONDS + 0.01
        monkeypatch.setattr(apikeys, "_clock", lambda: later)
        with pytest.raises(SafeholdError):
            other.apikeys.authenticate(created.token)  # the other process within AUTH_CACHE_SECONDS
    finally:
        other.close()
