"""Engine and session factory; the same code runs on SQLite (embedded default) and PostgreSQL (scale).

``Database`` is created once per process from settings. SQLite gets WAL mode and a busy timeout so the API
server, the CLI and background work can share one file safely. ``open_database`` is how a process opens *the*
store: only the commands that set one up may create it; every other one fails on a missing store rather than
starting an empty one with new keys.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from safehold.errors import NotFound
from safehold.home import create_home, explain, masked_url, sqlite_file
from safehold.store import jsoncodec

if TYPE_CHECKING:
    from pathlib import Path

    from safehold.config import Settings


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


#: A pooled PostgreSQL connection idle in the pool longer than this is pinged (a round trip) before it is used.
PING_AFTER_IDLE = 30.0


def _hand_out_live_connections(engine: Engine) -> None:
    """Make the pool hand out a PostgreSQL connection only if it is still usable.

    A connection idle a moment is checked without a round trip: the server's side of an idle connection says
    nothing unless it ends it (a restart, a terminated backend, an idle-session timeout each send an error and
    close), so one with something to read is ended (the process never LISTENs, so no notification can be waiting).
    One idle longer than :data:`PING_AFTER_IDLE` (a quiet peer may have lost it without a word) is pinged as well.
    Either way a dead connection makes the pool drop all it holds (a restart ended them all) and open a new one.
    SQLAlchemy's ``pool_pre_ping`` pinged on every checkout: a round trip and ~70 µs of CPU on every transaction,
    one more round trip on each batch of the chat intake. What this cannot see, like that ping within its 30 s: a
    connection whose peer vanished without closing it (a failover that moves the address); its first statement
    fails (``503 store.unavailable``) and the pool is replaced then."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def checked_in(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def check_out(dbapi_conn, record, _proxy) -> None:
        try:
            if dbapi_conn.closed or dbapi_conn.broken:
                raise InvalidatePoolError("the connection is closed")
            idle = select.poll()  # not select.select: it refuses descriptors past 1023, which a busy server has
            idle.register(dbapi_conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
            if idle.poll(0):
                raise InvalidatePoolError("the server sent something on an idle connection: it ended it")
            idle_since = record.info.get("idle_since")
            if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE:
                dialect.do_ping(dbapi_conn)
        except DisconnectionError:
            raise
        except Exception as exc:  # the driver's own error for a dead connection, or a failed ping
            raise InvalidatePoolError(str(exc)) from exc


class Database:
    def __init__(self, url: str):
        self.url = url
        kwargs: dict = {"future": True, "json_deserializer": jsoncodec.loads}
        if url.startswith("sqlite"):
            path = sqlite_file(url)
            if path is not None:
                _create_owner_only(path)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["json_serializer"] = jsoncodec.dumps  # SQLite stores text
        else:
            kwargs.update(pool_size=10, max_overflow=20, json_serializer=jsoncodec.dumps_bytes)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            _hand_out_live_connections(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on any error."""
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _create_owner_only(path: Path) -> None:
    """Create a missing SQLite file readable by its owner alone (an empty file is an empty database); SQLite gives
    its -wal and -shm files the same permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def store_not_found(where: object, why: str) -> NotFound:
    """The one answer to a missing store: where it was looked for, why there, and the two ways out."""
    return NotFound(
        "store.not_found",
        f"No Safehold store at {where} ({why}). Create it with `safehold db upgrade`, "
        "or set SAFEHOLD_HOME to an existing store.",
    )


def require_store(settings: Settings) -> None:
    """Fail with ``store.not_found`` unless the home exists and, on SQLite, its database file does, without
    creating either (connecting to a missing SQLite file would)."""
    for path in (settings.home, sqlite_file(settings.effective_database_url)):
        if path is not None and not path.exists():
            raise store_not_found(path, explain(settings.home))


def open_database(settings: Settings, *, create: bool) -> Database:
    """The store's database, migrated to the latest schema.

    ``create`` (``safehold db upgrade`` and ``serve``): make the home (owner-only, it holds the keys) and the
    database if missing. Otherwise a missing store, or a database without Safehold's tables (a new PostgreSQL
    database), is ``store.not_found``; an existing store on an older schema is still upgraded.
    """
    from safehold.store import migrate  # migrate builds on this module

    if create:
        create_home(settings.home)
    else:
        require_store(settings)
    db = Database(settings.effective_database_url)
    if not migrate.is_current(db):
        if not create and migrate.current_revision(db) is None:
            db.dispose()
            raise store_not_found(masked_url(db.url), "the database has no Safehold tables")
        migrate.upgrade(db)
    return db
