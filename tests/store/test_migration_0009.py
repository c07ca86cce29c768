"""Migration 0009 records the source of entries imported before sharing as their publisher, and its downgrade
leaves none of sharing's rows behind (the re-match and feedback cursors included), on both backends."""

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


def test_sources_become_publishers_and_the_downgrade_drops_the_cursors(database_url):
    db = Database(database_url)
    try:
        _downgrade(db, "0008")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO banks (name, description, kind, on_match, thresholds, dihedral, enabled, "
                    "created_at, updated_at) VALUES ('b', '', 'block', 'case', '{}', false, true, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for value, source, external_id in (("aa", "ncmec", "N-1"), ("bb", "ncmec", None), ("cc", None, "x")):
                conn.execute(
                    text(
                        "INSERT INTO bank_entries (bank_id, signal_type, value, fingerprint, source, external_id, "
                        "metadata, enabled, added_at, updated_at) SELECT id, 'md5', :v, :f, :s, :x, '{}', true, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM banks WHERE name = 'b'"
                    ),
                    {"v": value, "f": value, "s": source, "x": external_id},
                )
        migrate.upgrade(db)
        with db.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "SELECT e.value, p.publisher, p.external_id FROM bank_entry_publishers p "
                    "JOIN bank_entries e ON e.id = p.entry_id ORDER BY e.value"
                )
            ).all()
            assert [tuple(r) for r in rows] == [("aa", "source:ncmec", "N-1"), ("bb", "source:ncmec", "")]
            conn.execute(
                text(
                    "INSERT INTO app_settings (key, value, updated_at) "
                    "VALUES ('sharing.rematch', :v, CURRENT_TIMESTAMP)"
                ),
                {"v": '{"seq": 7}'},
            )
        _downgrade(db, "0008")
        with db.engine.connect() as conn:
            keys = conn.execute(text("SELECT key FROM app_settings WHERE key LIKE 'sharing.%'")).all()
        assert keys == []
        migrate.upgrade(db)
        assert migrate.is_current(db)
    finally:
        db.dispose()
