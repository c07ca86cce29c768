"""Shared fixtures. Database tests run twice: on an embedded SQLite file and on the local PostgreSQL server
(a fresh database per test, copied from a migrated template, dropped afterwards)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("SAFEHOLD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


PG_OK = _pg_available()
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def _migrated(url: str) -> None:
    from safehold.store import migrate
    from safehold.store.db import Database

    db = Database(url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One SQLite file migrated to head per test run; each test gets a copy (migrating costs more than copying)."""
    path = tmp_path_factory.mktemp("template") / "safehold.db"
    _migrated(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template():
    """One PostgreSQL database migrated to head per test run, the template of each test's database."""
    import psycopg

    name = f"safehold_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _migrated(_pg_url(name))
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh database per test, already at the head migration (copied from a template built by the
    migrations once per run; ``tests/store/test_migrations.py`` checks them against the models on both)."""
    if request.param == "sqlite":
        import sqlite3

        path = tmp_path / "safehold.db"
        with sqlite3.connect(request.getfixturevalue("sqlite_template")) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
        yield f"sqlite:///{path}"
        return
    if not PG_OK:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    import psycopg

    template = request.getfixturevalue("pg_template")
    name = f"safehold_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _pg_url(name)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path, database_url):
    from safehold.config import Settings

    # The tarpit off: many tests send refused requests on purpose (every route without a key, every bad integer),
    # which is exactly what it slows down; tests/api/test_tarpit.py turns it on.
    return Settings(home=tmp_path / "home", database_url=database_url, tarpit_max_delay_seconds=0)


@pytest.fixture
def svc(settings):
    from safehold.services import Services

    s = Services(settings)
    yield s
    s.close()


@pytest.fixture
def client(svc):
    from fastapi.testclient import TestClient

    from safehold.app import create_app

    with TestClient(create_app(svc, background=False)) as c:
        yield c


@pytest.fixture
def keys(svc):
    """One API key per role: ``keys['admin']`` is an ``Authorization`` header dict."""
    from safehold.auth.roles import Role

    return {r.value: {"Authorization": f"Bearer {svc.apikeys.create(f'test-{r.value}', r.value).token}"} for r in Role}


@pytest.fixture
def cli(monkeypatch, settings):
    """Runs `safehold …` in-process against the test's own home and database: ``cli("bank", "list")``."""
    from typer.testing import CliRunner

    from safehold.cli import common
    from safehold.cli.main import app
    from safehold.config import get_settings

    settings.home.mkdir(parents=True, exist_ok=True)  # the store exists: commands never create one
    monkeypatch.setenv("SAFEHOLD_HOME", str(settings.home))
    monkeypatch.setenv("SAFEHOLD_DATABASE_URL", settings.effective_database_url)
    get_settings.cache_clear()
    common._services = None
    runner = CliRunner()

    def run(*args, code=0, input=None):
        result = runner.invoke(app, [str(a) for a in args], input=input)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    yield run
    if common._services is not None:
        common._services.close()
    common._services = None
    get_settings.cache_clear()


@pytest.fixture
def redis_url():
    """A database of its own on the local Redis server (1-15; claimed in database 0, which is otherwise left
    alone, so parallel test processes never share one), empty before and after the test."""
    import redis

    admin = redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=3)
    try:
        admin.ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_HOST}:{REDIS_PORT} is required in CI")
        pytest.skip(f"Redis at {REDIS_HOST}:{REDIS_PORT} is not running")
    claim = next((n for n in range(1, 16) if admin.set(f"safehold-test:db{n}", os.getpid(), nx=True, ex=600)), None)
    assert claim is not None, "all Redis test databases are taken"
    db = redis.Redis(REDIS_HOST, REDIS_PORT, db=claim)
    db.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{claim}"
    finally:
        db.flushdb()
        admin.delete(f"safehold-test:db{claim}")


@pytest.fixture(params=["inprocess", pytest.param("celery", marks=pytest.mark.redis)])
def tasks_engine(request, svc):
    """``svc``'s background work running on each engine (``SAFEHOLD_TASKS``): threads of this process, or Celery
    on the local Redis with a worker (threads) in this process whose tasks run on ``svc``. No beat: a task runs
    when kicked, or when the test calls it."""
    if request.param == "celery":
        svc.settings.tasks, svc.settings.redis_url = "celery", request.getfixturevalue("redis_url")
    svc.start_background()
    try:
        if request.param == "celery":
            from celery.contrib.testing.worker import start_worker

            root = logging.getLogger()
            level, handlers = root.level, root.handlers[:]  # the worker sets up logging its way: put it back after
            try:
                with start_worker(svc.tasks.celery, pool="threads", concurrency=2, perform_ping_check=False):
                    yield request.param
            finally:
                root.setLevel(level)
                root.handlers[:] = handlers
        else:
            yield request.param
    finally:
        svc.tasks.stop()


class Clock:
    """The stand-in's clock: real time plus whatever a test skips ahead (to expire unfinished reports)."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def cybertip(svc):
    """A started ``StandIn`` (``.clock`` moves its time); ``svc`` files with it, with tiny back-offs."""
    from safehold.reporting.cybertipline.standin import StandIn

    clock = Clock()
    standin = StandIn(username="esp", password="secret", clock=clock)
    standin.clock = clock
    s = svc.settings
    s.cybertip_url = standin.start()
    s.cybertip_username, s.cybertip_password = "esp", "secret"
    s.cybertip_timeout, s.cybertip_backoff_seconds, s.cybertip_backoff_max_seconds = 5.0, 0.001, 0.001
    s.platform_name, s.legal_url = "Example Social", "https://example.org/legal"
    s.reporter_first_name, s.reporter_last_name, s.reporter_email = "Trust", "Safety", "safety@example.org"
    yield standin
    standin.stop()
