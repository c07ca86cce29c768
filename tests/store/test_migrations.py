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


def test_revisions_are_numbered_like_their_files():
    """``migrate.head_revision`` reads the head from the file names; Alembic's own chain must agree with it."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    for rev in scripts.walk_revisions():
        assert rev.path.endswith(f"/{rev.revision}_{rev.path.rsplit('/', 1)[1].split('_', 1)[1]}"), rev.path
        if rev.down_revision is not None:
            assert int(rev.revision) == int(rev.down_revision) + 1
    assert scripts.get_current_head() == migrate.head_revision()


def test_current_revision_of_an_empty_database_is_none(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert migrate.current_revision(db) is None
        assert not migrate.is_current(db)
    finally:
        db.dispose()
