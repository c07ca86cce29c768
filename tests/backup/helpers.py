"""A populated store to back up (banks, cases with media, preserved evidence, audit records: benign generated
images and synthetic text), an empty target to restore into, and a comparison of two databases' rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from safehold.store.db import Database
from safehold.store.models import Base
from tests.conftest import PG_ADMIN, _pg_url
from tests.evidence.helpers import preserved, text_case

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def populate(svc) -> None:
    svc.banks.create("known", created_by="apikey:ops")
    svc.banks.add_hash("known", "md5", MD5, added_by="apikey:ops")
    svc.banks.add_hash("known", "sha256", "ab" * 32, added_by="apikey:ops")
    for seed in (1, 2):
        preserved(svc, seed, content_id=f"content-{seed}")
    svc.evidence.preserve_case(text_case(svc), "legal:lee")


def rows(url: str) -> dict[str, list[tuple]]:
    """Every table's rows in primary-key order."""
    db = Database(url)
    try:
        with db.session() as s:
            out = {}
            for table in Base.metadata.sorted_tables:
                q = select(table).order_by(*table.primary_key.columns)
                out[table.name] = [tuple(r) for r in s.execute(q)]
            return out
    finally:
        db.dispose()


def create_pg_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database: (name, SQLAlchemy URL)."""
    import psycopg

    name = f"safehold_restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, _pg_url(name)


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def empty_database_args(url: str) -> Iterator[list[str]]:
    """``--database-url`` of a new, empty database of ``url``'s engine (none for SQLite: the default file in the
    new home), dropped afterwards."""
    if url.startswith("sqlite"):
        yield []
        return
    name, fresh = create_pg_database()
    try:
        yield ["--database-url", fresh]
    finally:
        drop_pg_database(name)
