"""``insert_unnest``: many rows in one statement on PostgreSQL, with the Python-side defaults applied, JSON kept,
conflicts skipped and the inserted rows returned."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from safehold.store.bulk import insert_unnest
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_rows_go_in_with_their_defaults_and_conflicts_are_skipped(database_url):
    db = Database(database_url)
    try:
        with db.session() as s:
            bank = Bank(name="bulk")
            s.add(bank)
            s.flush()
            rows = [
                {
                    "bank_id": bank.id,
                    "signal_type": "md5",
                    "value": f"{i:032x}",
                    "fingerprint": f"{i:032x}",
                    "metadata": {"n": i, "tags": ["a", None]} if i % 2 else {},
                    "note": None,
                    "enabled": i != 3,
                }
                for i in range(5)
            ]
            first = insert_unnest(s, BankEntry.__table__, rows, conflict=["bank_id", "signal_type", "fingerprint"],
                                  returning=["id", "value"])  # fmt: skip
            again = insert_unnest(s, BankEntry.__table__, rows[3:] + [{**rows[0], "value": "x", "fingerprint": "x"}],
                                  conflict=["bank_id", "signal_type", "fingerprint"], returning=["value"])  # fmt: skip
        assert sorted(v for _, v in first) == [r["value"] for r in rows]
        assert [tuple(r) for r in again] == [("x",)]  # the two already there were skipped
        with db.session() as s:
            stored = {e.value: e for e in s.scalars(select(BankEntry))}
        assert stored[f"{1:032x}"].extra == {"n": 1, "tags": ["a", None]}
        assert stored[f"{0:032x}"].extra == {}
        assert stored[f"{3:032x}"].enabled is False
        # Python-side defaults (utcnow) applied, and timezone-aware; server defaults too.
        assert all(e.added_at is not None and e.added_at.tzinfo is not None for e in stored.values())
        assert all(e.withdrawn is False for e in stored.values())
        assert insert_unnest(s, BankEntry.__table__, []) == []
    finally:
        db.engine.dispose()
