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
    body = r.json()
    assert body["status"] == "ok" and body["checks"] == {"database": "ok", "migrations": "ok", "index": "ok"}
    assert body["indexes"]["pdq"] == {"changes_behind": 0, "lag_seconds": 0.0}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readyz_names_migrations_behind(client, fresh, monkeypatch):
    monkeypatch.setattr(monitoring, "_head_revision", lambda: "9999")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert r.json()["checks"] == {"database": "ok", "migrations": "behind", "index": "ok"}


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
        # A change waits for the index longer than SAFEHOLD_READY_MAX_INDEX_LAG_SECONDS: stuck.
        svc.banks.create("lagging")
        svc.banks.add_hash("lagging", "pdq", "5a3c" * 16)
        svc.index.last_seq = 0  # as if the sync had not run since
        checks, indexes = Readiness(svc).answer()
        assert checks["index"] == "ok" and indexes["pdq"]["changes_behind"] >= 1
        svc.settings.ready_max_index_lag_seconds = 1e-6
        checks, indexes = Readiness(svc).answer()
        assert checks["index"] == "stale" and indexes["pdq"]["lag_seconds"] > 0
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
