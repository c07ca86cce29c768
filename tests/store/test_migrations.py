"""The migrations create exactly the tables the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from safehold.store import migrate
from safehold.store.db import Database
from safehold.store.models import Base


def test_migrations_match_models(database_url):
    db = Database(database_url)
    try:
        migrate.upgrade(db)
        assert migrate.is_current(db)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
        assert diff == []
    finally:
        db.dispose()
