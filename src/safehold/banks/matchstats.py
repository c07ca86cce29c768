"""How often each bank entry matches: counted in memory on the match path, added to hourly rows by the counters flush.

A scan that matches only increments a dictionary under a lock (no database write per scan, like
:class:`~safehold.store.counters.DailyCounts`); :meth:`MatchCounts.flush`, called by the periodic
``counters.flush`` task, adds each entry's buffered matches to its row for the current UTC hour (one upsert per
entry), keeping the first and last match times. Hourly rows are what the flood rule reads over its window
(:mod:`safehold.sharing.quarantine`) and what per-day statistics add up. If the database refuses, the counts are
kept for the next flush, so none is lost.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from safehold.store.db import Database
from safehold.store.models import EntryMatchCount, utcnow


def hour_of(at: dt.datetime) -> str:
    """The hourly bucket of ``at`` (UTC), as stored in ``entry_match_counts.hour``: ``2026-12-03T14``."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


@dataclass
class _Pending:
    count: int
    first_at: dt.datetime
    last_at: dt.datetime

    def absorb(self, count: int, first_at: dt.datetime, last_at: dt.datetime) -> None:
        self.count += count
        self.first_at, self.last_at = min(self.first_at, first_at), max(self.last_at, last_at)


class MatchCounts:
    """Buffered match counts per (hour, entry id). Thread-safe."""

    def __init__(self, db: Database):
        self.db = db
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._lock = threading.Lock()

    def add(self, entry_ids: Iterable[int], at: dt.datetime | None = None) -> None:
        """Count one match of each entry in ``entry_ids`` (a scan's matched entries, each once)."""
        at = at or utcnow()
        hour = hour_of(at)
        with self._lock:
            for entry_id in entry_ids:
                self._pending.setdefault((hour, entry_id), _Pending(0, at, at)).absorb(1, at, at)

    def flush(self) -> None:
        """Add the buffered counts to their hourly rows; on failure they are kept for the next flush and it raises."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            with self.db.session() as s:
                insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
                m = EntryMatchCount
                for (hour, entry_id), p in sorted(pending.items()):  # one order: concurrent flushes never deadlock
                    stmt = insert(m).values(
                        hour=hour, entry_id=entry_id, count=p.count, first_at=p.first_at, last_at=p.last_at
                    )
                    # An earlier flush of the same hour came first: its first_at stays, the last_at moves on.
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["hour", "entry_id"],
                            set_={"count": m.count + p.count, "last_at": stmt.excluded.last_at},
                        )
                    )
        except Exception:
            with self._lock:
                for key, p in pending.items():
                    self._pending.setdefault(key, _Pending(0, p.first_at, p.last_at)).absorb(
                        p.count, p.first_at, p.last_at
                    )
            raise
