"""The seen-hash store: the hashes (never the media) of content Safehold scanned, kept for a retention so that a
bank entry arriving later — from an exchange or added by hand — is matched against recent uploads
(:mod:`safehold.sharing.rematch`). Opt-in (``SAFEHOLD_SEEN_HASHES``); off, nothing is kept.

Recording is off the hot path: a scan adds its hashes to an in-memory buffer (a lock and a dictionary insert);
the per-process flush task writes the buffer in one multi-row insert, and so does :meth:`SeenHashes.flush` at a
clean shutdown. A buffer that reaches :data:`MAX_BUFFER` is written by the scan that filled it, so memory stays
bounded whatever the rate; a write the database refuses keeps the rows for the next flush.

Compact on purpose (docs/sharing.md measures it): a hex hash is stored as its raw bytes (PDQ: 32, SHA-256: 32,
MD5: 16), with its signal type's name, the content and account ids and the time. A value that is not hex, or is
longer than :data:`MAX_VALUE_BYTES` (a video's vPDQ, a list of frames), is not kept.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import OperationalError

from safehold.store.db import Database
from safehold.store.models import SeenHash, iso, utcnow

#: Rows buffered before the scan that adds one more writes them itself.
MAX_BUFFER = 10_000
#: The longest hash kept, in bytes (SHA-512 size): per-frame video hashes are not kept.
MAX_VALUE_BYTES = 64
#: Rows deleted per statement of the purge (a short write lock each on SQLite).
PURGE_BATCH = 10_000
#: The purge runs at most this often (the upkeep loop calls it every round).
PURGE_EVERY = dt.timedelta(hours=1)


def encode(value: str) -> bytes | None:
    """A canonical hex value as raw bytes; ``None`` for one that is not hex or too long to keep."""
    if len(value) > 2 * MAX_VALUE_BYTES:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


class Seen(NamedTuple):
    """One stored hash as re-matching reads it (``value`` is the canonical hex text). A named tuple: millions are
    made per round, and a tuple is built several times faster than a dataclass."""

    id: int
    signal_type: str
    value: str
    content_id: str
    account_id: str | None
    seen_at: dt.datetime


class SeenHashes:
    """Records and reads the seen hashes; ``enabled`` False makes :meth:`record` a no-op."""

    def __init__(self, db: Database, *, enabled: bool, days: float, max_buffer: int = MAX_BUFFER):
        self.db = db
        self.enabled = enabled
        self.keep = dt.timedelta(days=days)
        self.max_buffer = max_buffer
        self._pending: dict[tuple, dt.datetime] = {}
        self._lock = threading.Lock()
        self._purged_at: dt.datetime | None = None

    def record(self, content_id: str, account_id: str | None, signals: Iterable[tuple[str, str]]) -> None:
        """Remember ``signals`` (type, canonical value) as seen now for the content (buffered, see module docs).
        The same hash of the same subject twice before a flush is kept once."""
        if not self.enabled or not content_id:
            return
        now = utcnow()
        with self._lock:
            for signal_type, value in signals:
                raw = encode(value)
                if raw is not None:
                    self._pending.setdefault((signal_type, raw, content_id, account_id), now)
            full = len(self._pending) >= self.max_buffer
        if full:
            self.flush()

    def flush(self) -> int:
        """Write the buffered rows (one multi-row insert); on failure they are kept for the next flush and it
        raises. Returns how many were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        rows = [
            {"signal_type": t, "value": v, "content_id": c, "account_id": a, "seen_at": at}
            for (t, v, c, a), at in pending.items()
        ]
        try:
            with self.db.session() as s:
                s.execute(insert(SeenHash), rows)
        except Exception:
            with self._lock:
                for key, at in pending.items():
                    self._pending.setdefault(key, at)
            raise
        return len(rows)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def cutoff(self, now: dt.datetime | None = None) -> dt.datetime:
        """The oldest time still within retention."""
        return (now or utcnow()) - self.keep

    def purge(self, now: dt.datetime | None = None, *, force: bool = False) -> int:
        """Delete the hashes older than the retention (at most once an hour unless ``force``), in batches;
        returns how many were deleted."""
        now = now or utcnow()
        if not force and self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return 0
        cutoff, total = self.cutoff(now), 0
        while True:
            with self.db.session() as s:
                old = select(SeenHash.id).where(SeenHash.seen_at < cutoff).limit(PURGE_BATCH).scalar_subquery()
                n = s.execute(delete(SeenHash).where(SeenHash.id.in_(old))).rowcount
            total += n
            if n < PURGE_BATCH:
                break
        self._purged_at = now
        return total

    def read(
        self, types: Iterable[str], *, chunk: int = 50_000, now: dt.datetime | None = None
    ) -> Iterator[list[Seen]]:
        """Every stored hash of ``types`` within retention, in key order, ``chunk`` rows at a time (bounded
        memory whatever the table's size)."""
        types, cutoff, after = sorted(set(types)), self.cutoff(now), 0
        if not types:
            return
        cols = (SeenHash.id, SeenHash.signal_type, SeenHash.value, SeenHash.content_id, SeenHash.account_id)
        while True:
            with self.db.session() as s:
                rows = s.execute(
                    select(*cols, SeenHash.seen_at)
                    .where(SeenHash.id > after, SeenHash.signal_type.in_(types), SeenHash.seen_at >= cutoff)
                    .order_by(SeenHash.id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            yield [Seen(i, t, bytes(v).hex(), c, a, at) for i, t, v, c, a, at in rows]
            after = rows[-1][0]

    def status(self) -> dict:
        """How many hashes are kept, the oldest's time, the table's size on disk (``None`` where the database
        cannot say) and the retention."""
        with self.db.session() as s:
            count, oldest = s.execute(select(func.count(), func.min(SeenHash.seen_at))).one()
            size = table_bytes(s, SeenHash.__tablename__)
        return {
            "enabled": self.enabled,
            "retention_days": self.keep.total_seconds() / 86400,
            "count": count,
            "pending": self.pending,
            "oldest": iso(oldest),
            "bytes": size,
            "bytes_per_hash": round(size / count, 1) if size and count else None,
        }


def table_bytes(s, table: str) -> int | None:
    """A table's size on disk with its indexes: PostgreSQL's own total; on SQLite the pages of the table and its
    indexes (the ``dbstat`` table, when the SQLite build has it)."""
    if s.bind.dialect.name == "postgresql":
        return s.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar()
    try:
        return s.execute(
            text(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = :t "
                "OR name IN (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t)"
            ),
            {"t": table},
        ).scalar()
    except OperationalError:  # a SQLite built without dbstat
        return None
