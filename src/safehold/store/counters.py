"""Aggregate counters buffered in memory and added to a per-day table: the only trace some work leaves.

Scans of media that did not match and search-guard decisions are counted, never recorded one by one. Counting is
a lock and a dictionary increment (cheap enough for the search box's hot path); the upkeep loop calls
:meth:`DailyCounts.flush`, which adds each buffered count to its row (one upsert per key) and, if the database
refuses, keeps the counts for the next flush so none is lost.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from safehold.store.db import Database


class DailyCounts:
    """Counts per key (a tuple of ``fields`` values) for ``model``, a table with ``day``, those fields and
    ``count``, unique on ``day`` + fields. Thread-safe."""

    def __init__(self, db: Database, model, fields: tuple[str, ...]):
        self.db = db
        self.model = model
        self.fields = fields
        self._pending: Counter[tuple] = Counter()
        self._lock = threading.Lock()

    def add(self, key: tuple, n: int = 1) -> None:
        with self._lock:
            self._pending[key] += n

    def flush(self) -> None:
        """Add the buffered counts to today's rows; on failure they are kept for the next flush and it raises."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not pending:
            return
        day = dt.datetime.now(dt.UTC).date().isoformat()
        try:
            with self.db.session() as s:
                insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
                for key, n in pending.items():
                    stmt = insert(self.model).values(day=day, count=n, **dict(zip(self.fields, key, strict=True)))
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["day", *self.fields], set_={"count": self.model.count + n}
                        )
                    )
        except Exception:
            with self._lock:
                self._pending.update(pending)
            raise

    def recent(self, days: int) -> list[dict]:
        """Every row of the last ``days`` UTC days (today included), after a flush; oldest first, then by key."""
        self.flush()
        since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)).isoformat()
        m = self.model
        order = [m.day, *(getattr(m, f) for f in self.fields)]
        with self.db.session() as s:
            rows = s.scalars(select(m).where(m.day >= since).order_by(*order)).all()
            return [{"day": r.day, **{f: getattr(r, f) for f in self.fields}, "count": r.count} for r in rows]
