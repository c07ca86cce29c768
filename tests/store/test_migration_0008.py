"""Migration 0008 moves each bank's PDQ threshold into its per-signal-type thresholds, and back, on both backends."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from safehold.store import migrate
from safehold.store.db import Database


def _downgrade(db: Database, revision: str) -> None:
    cfg = migrate.alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_pdq_thresholds_are_kept(database_url):
    db = Database(database_url)
    try:
        _downgrade(db, "0007")
        with db.engine.begin() as conn:
            for name, pdq in (("strict", 12), ("usual", 31)):
                conn.execute(
                    text(
                        "INSERT INTO banks (name, description, kind, on_match, pdq_threshold, dihedral, enabled, "
                        "created_at, updated_at) VALUES (:n, '', 'block', 'case', :t, false, true, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"n": name, "t": pdq},
                )
        migrate.upgrade(db)
        with db.session() as s:
            from safehold.store.models import Bank

            assert {b.name: b.thresholds for b in s.query(Bank)} == {"strict": {"pdq": 12}, "usual": {"pdq": 31}}
        _downgrade(db, "0007")
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT name, pdq_threshold FROM banks ORDER BY name")).all()
        assert [tuple(r) for r in rows] == [("strict", 12), ("usual", 31)]
        migrate.upgrade(db)
        assert migrate.is_current(db)
    finally:
        db.dispose()
