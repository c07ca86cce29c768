"""Shared fixtures. Database tests run twice: on an embedded SQLite file and on the local PostgreSQL server
(a database per test as fresh as a copy of a migrated template: see :class:`PgPool`)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _share_route_contexts() -> None:
    """Build each route's FastAPI context once per test process, not once per test.

    FastAPI (0.16x) builds a route's request handling (its dependants, its parameter models) lazily, per app, on
    the first request that walks past the route, and the ``client`` fixture makes a new app for every test: a 404
    costs ~0.6 s of CPU building all ~250 routes, over ~3,000 tests about a third of the suite. The context
    depends on the route and on how its router was included (the same for every app ``create_app`` makes) and on
    the app only through ``dependency_overrides``, which no test uses: while an app has none, the context built for
    the first app serves the rest. A FastAPI without this internal is left alone (the suite is only slower).
    """
    try:
        from fastapi.routing import _EffectiveRouteContext
    except ImportError:
        return
    build = _EffectiveRouteContext.from_api_route.__func__
    built: dict[tuple, tuple] = {}

    def from_api_route(cls, *, original_route, include_context):
        if getattr(include_context.dependency_overrides_provider, "dependency_overrides", None):
            return build(cls, original_route=original_route, include_context=include_context)
        key = (
            id(original_route),
            id(include_context.included_router),
            include_context.prefix,
            tuple(id(d) for d in include_context.dependencies),
            include_context.max_body_size,
        )
        if key not in built:  # the route and router are kept alive with the context, so no id is reused
            context = build(cls, original_route=original_route, include_context=include_context)
            built[key] = (context, original_route, include_context.included_router)
        return built[key][0]

    _EffectiveRouteContext.from_api_route = classmethod(from_api_route)


_share_route_contexts()
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


#: One catalogue listing of everything a test could change in a database's schema (relations, columns in order,
#: constraints, indexes, triggers, functions, types, enum labels, extensions, schemas, per-database settings).
_SCHEMA = """
SELECT md5(string_agg(x, E'\\n' ORDER BY x)) FROM (
  SELECT format('rel %s.%s %s', n.nspname, c.relname, c.relkind) AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname !~ '^(pg_|information_schema)'
  UNION ALL SELECT format('col %s %s %s %s %s %s', a.attrelid::regclass, a.attnum, a.attname,
                          format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname !~ '^(pg_|information_schema)'
  UNION ALL SELECT format('con %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(c.oid))
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname !~ '^(pg_|information_schema)'
  UNION ALL SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname !~ '^(pg_|information_schema)'
  UNION ALL SELECT format('trg %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT format('fn %s %s', p.oid::regprocedure, md5(p.prosrc))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname !~ '^(pg_|information_schema)'
  UNION ALL SELECT format('type %s %s', t.oid::regtype, t.typtype)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname !~ '^(pg_|information_schema)'
  UNION ALL SELECT format('enum %s %s %s', enumtypid::regtype, enumsortorder, enumlabel) FROM pg_enum
  UNION ALL SELECT format('ext %s %s', extname, extversion) FROM pg_extension
  UNION ALL SELECT format('nsp %s', nspname) FROM pg_namespace
  UNION ALL SELECT format('set %s', setconfig) FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) s
"""
_TABLES = """SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
             WHERE schemaname !~ '^(pg_|information_schema)' ORDER BY 1"""
_SEQUENCES = """SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences
                WHERE schemaname !~ '^(pg_|information_schema)' ORDER BY 1"""


class PgPool:
    """Each test's PostgreSQL database, as fresh as a copy of the migrated template but mostly reused: creating
    and dropping a database per test cost about a second each on a busy machine, for some 800 tests.

    A database a test has finished with is renamed (so anything of the test still holding its URL can no longer
    reach it), its schema compared with the template's, and its data put back to the template's: the tables that
    hold rows emptied (``TRUNCATE``, so no dead rows stay behind), the template's rows copied back, every sequence
    set to the template's value. A database whose schema a test changed (a migration run down), or that cannot be
    renamed or reset, is dropped instead, and the next test gets a new copy of the template."""

    def __init__(self, template: str):
        self.template = template
        self.idle: list[str] = []
        self.schema: str | None = None  # the template's, read from its first copy
        self.rows: dict[str, bytes] = {}  # table -> the template's rows (COPY text)
        self.sequences: dict[str, tuple[int, bool]] = {}  # sequence -> (last_value, is_called)

    @staticmethod
    def _name() -> str:
        return f"safehold_test_{uuid.uuid4().hex[:12]}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql)

    def take(self) -> str:
        if self.idle:
            return self.idle.pop()
        name = self._name()
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        if self.schema is None:
            self._read_template(name)
        return name

    def _read_template(self, name: str) -> None:
        import psycopg

        with psycopg.connect(_pg_url(name).replace("+psycopg", "")) as conn:
            self.schema = conn.execute(_SCHEMA).fetchone()[0]
            for (table,) in conn.execute(_TABLES).fetchall():
                if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
                    with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
                        self.rows[table] = b"".join(bytes(chunk) for chunk in copy)
            for (seq,) in conn.execute(_SEQUENCES).fetchall():
                self.sequences[seq] = tuple(conn.execute(f"SELECT last_value, is_called FROM {seq}").fetchone())

    def give_back(self, name: str) -> None:
        """Resets the database for the next test, or drops it."""
        fresh = self._name()
        try:
            self._disconnect(name)
            self._admin(f'ALTER DATABASE "{name}" RENAME TO "{fresh}"')
            name = fresh
            if self._reset(name):
                self.idle.append(name)
                return
        except Exception:  # whatever went wrong, dropping the database is the way out
            pass
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @staticmethod
    def _disconnect(name: str) -> None:
        """Ends the sessions a test left open on the database (as ``DROP DATABASE … WITH (FORCE)`` would), and
        waits for them to be gone."""
        import psycopg

        ended = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
        deadline = time.monotonic() + 5
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            while conn.execute(ended, (name,)).fetchone()[0] and time.monotonic() < deadline:
                time.sleep(0.01)

    def _reset(self, name: str) -> bool:
        import psycopg

        with psycopg.connect(_pg_url(name).replace("+psycopg", "")) as conn:
            if conn.execute(_SCHEMA).fetchone()[0] != self.schema:
                return False
            tables = [t for (t,) in conn.execute(_TABLES).fetchall()]
            held = conn.execute(
                " UNION ALL ".join(f"SELECT {i} WHERE EXISTS (SELECT 1 FROM {t})" for i, t in enumerate(tables))
            ).fetchall()
            emptied = sorted({tables[i] for (i,) in held} | set(self.rows))
            conn.execute("SET LOCAL session_replication_role = replica")  # no triggers while the rows go back
            if emptied:
                conn.execute(f"TRUNCATE {', '.join(emptied)} CASCADE")
            for table, data in self.rows.items():
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data)
            for seq, (value, called) in self.sequences.items():
                conn.execute("SELECT setval(%s::regclass, %s, %s)", (seq, value, called))
            conn.commit()
        return True

    def close(self) -> None:
        for name in self.idle:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.idle.clear()


@pytest.fixture(scope="session")
def pg_pool(pg_template):
    """This test process's :class:`PgPool` (each xdist worker has its own)."""
    pool = PgPool(pg_template)
    yield pool
    pool.close()


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
    pool = request.getfixturevalue("pg_pool")
    name = pool.take()
    yield _pg_url(name)
    pool.give_back(name)


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
