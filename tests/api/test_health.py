"""/livez and /readyz: no key, nothing revealed but ok or a short reason per check; 503 naming what is not ready."""

from __future__ import annotations

import pytest

from safehold import monitoring
from safehold.monitoring import Readiness


@pytest.fixture
def fresh(monkeypatch):
    """Every readiness check read anew (no cached answer)."""
    monkeypatch.setattr(monitoring, "CACHE_SECONDS", 0.0)


def test_livez_needs_no_key_and_says_nothing_else(client):
    r = client.get("/livez")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_when_ready(client, fresh):
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "index": "ok"}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readyz_names_migrations_behind(client, fresh, monkeypatch):
    monkeypatch.setattr(monitoring, "_head_revision", lambda: "9999")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "not_ready", "checks": {"database": "ok", "migrations": "behind", "index": "ok"}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readyz_with_the_database_away(client, svc, fresh, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("refused")

    monkeypatch.setattr(svc.db.engine, "connect", down)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"database": "unreachable", "migrations": "unknown", "index": "unknown"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_index_loading_and_stale(settings, fresh, monkeypatch):
    from safehold.services import Services

    svc = Services(settings, load_index=False)
    try:
        assert Readiness(svc).check()["index"] == "loading"
        svc.load_index()
        assert Readiness(svc).check()["index"] == "ok"
        # Changes wait (the index is behind the database) and it has not caught up for INDEX_MAX_LAG: stuck.
        svc.index.last_seq = -1
        monkeypatch.setattr(monitoring, "INDEX_MAX_LAG", 0.0)
        assert Readiness(svc).check()["index"] == "stale"
    finally:
        svc.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_redis_is_checked_with_celery(svc, fresh):
    svc.settings.tasks = "celery"
    svc.settings.redis_url = "redis://127.0.0.1:1/0"  # nothing listens there
    assert Readiness(svc).check()["redis"] == "unreachable"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readiness_is_cached(client, svc, monkeypatch):
    assert client.get("/readyz").status_code == 200
    monkeypatch.setattr(monitoring, "_head_revision", lambda: "9999")
    assert client.get("/readyz").status_code == 200  # the answer of a moment ago, not a new query
