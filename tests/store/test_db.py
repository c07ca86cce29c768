"""The PostgreSQL pool hands out live connections without a round trip per checkout (safehold.store.db): a
connection the server ended while it sat idle (a restart, a terminated backend) is replaced before use; one idle
for long is pinged; a fresh one is used as it is."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import text

from safehold.store import db as db_module
from safehold.store.db import Database


@pytest.fixture
def pg(database_url):
    if database_url.startswith("sqlite"):
        pytest.skip("the pool's checks are PostgreSQL's")
    database = Database(database_url)
    yield database
    database.dispose()


def backend(database: Database) -> int:
    with database.session() as s:
        return s.scalar(text("SELECT pg_backend_pid()"))


def driver_statements(monkeypatch) -> list[str]:
    """Every statement the driver sends from now on (one entry per execute or executemany): the engine's and those
    sent on the driver's connection itself (safehold.rules.conversations._PostgresBatchSQL)."""
    import psycopg

    sent: list[str] = []
    for name in ("execute", "executemany"):
        send = getattr(psycopg.Cursor, name)
        monkeypatch.setattr(
            psycopg.Cursor, name, lambda cur, q, *a, send=send, **k: (sent.append(str(q)), send(cur, q, *a, **k))[1]
        )
    return sent


def test_a_connection_the_server_ended_while_idle_is_replaced_before_use(pg, database_url):
    import psycopg

    first = backend(pg)
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as admin:  # as a restart would
        assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0]
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        deadline = time.monotonic() + 5
        while admin.execute(gone, (first,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.01)
    second = backend(pg)  # no error: the ended connection was dropped at checkout and another opened
    assert second != first


def test_a_connection_used_a_moment_ago_is_not_pinged(pg, monkeypatch):
    backend(pg)
    sent = driver_statements(monkeypatch)
    assert backend(pg)
    assert sent == ["SELECT pg_backend_pid()"]


def test_a_connection_idle_for_long_is_pinged(pg, monkeypatch):
    backend(pg)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE", -1.0)  # every idle connection counts as idle for long
    sent = driver_statements(monkeypatch)
    assert backend(pg)
    assert sent[-1] == "SELECT pg_backend_pid()" and len(sent) == 2, sent


def test_a_connection_numbered_past_1023_is_checked_too(pg):
    """A busy server holds more than a thousand descriptors (clients' sockets); the check must take any."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if soft != resource.RLIM_INFINITY else soft, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:  # the pool connects on first use: its connection is numbered past the files held
        assert backend(pg) and backend(pg)  # the second checks the pooled one
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
