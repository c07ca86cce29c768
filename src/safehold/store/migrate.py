"""Apply Alembic migrations programmatically (``safehold db upgrade`` and automatically on first start)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from safehold.store.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")
#: Alembic's bookkeeping table: one row, the revision the schema is at.
VERSION_TABLE = "alembic_version"


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    """The revision the database is at (None: no Safehold schema), read with one query. Alembic itself is
    imported only to migrate: loading it costs a command more than all its own work."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def head_revision() -> str:
    """The newest migration. Revisions are numbered like their files (``0005_text_safety.py`` is revision
    ``0005``, each revising the one before; ``tests/store/test_migrations.py`` holds them to it), so the head is
    the highest file number and needs no parse of the scripts."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision()
