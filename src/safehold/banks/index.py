"""The per-process matching indexes over every enabled bank entry, kept in step with the database.

Built once from the database (or loaded from a snapshot on disk for a fast start), then updated
incrementally by replaying ``index_changes`` — never rebuilt per change. Replay is idempotent (an entry is
added at most once and removing an absent entry does nothing), so re-reading a change twice is harmless.

The bank index is a map from signal type to that type's index (whatever class the type names in
:meth:`~safehold.signals.base.SignalType.index_cls`, behind :class:`~safehold.matching.protocol.SignalIndex`);
nothing here knows one type from another. Entries of a type that cannot be loaded (a plug-in not installed) are
logged and skipped.

Bank settings (thresholds, kind, dihedral, enabled) are *not* baked into the index: the index holds every
enabled entry, a lookup asks at the widest threshold any enabled bank uses for the type, and the scanner applies
each bank's settings to the few candidates it returns. Changing a threshold or disabling a bank therefore costs
nothing here.
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import and_, func, select

from safehold.errors import SafeholdError
from safehold.home import private_opener, unique_suffix
from safehold.matching.protocol import SignalIndex
from safehold.signals import registry
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry, IndexChange

log = logging.getLogger(__name__)

#: 2: one file per signal type, written by that type's index; 3: each entry's bank (older snapshots are rebuilt).
SNAPSHOT_VERSION = 3
REPLAY_BATCH = 20_000


@dataclass(frozen=True)
class BankSettings:
    id: int
    name: str
    kind: str
    #: The bank's own thresholds by signal type; a type not listed uses its default (see :meth:`threshold`).
    thresholds: dict[str, int]
    dihedral: bool
    enabled: bool
    #: What a match on it does (``case``, ``auto``, ``none``): the pipeline reads it here, not from the table.
    on_match: str = "case"

    def threshold(self, signal_type: str) -> int:
        return registry.threshold_for(self.thresholds, signal_type)


@dataclass(frozen=True)
class Candidate:
    """An entry the index found for a signal; ``variant`` names the dihedral transform that matched."""

    entry_id: int
    signal_type: str
    distance: int
    variant: str = "original"
    extra: dict | None = None


class _EntryBanks:
    """The bank of each entry in the index, by entry id (0: not in the index), in a growable array: four bytes per
    id up to the highest (ids a database skipped included), not a Python object per entry. Knowing an entry's bank
    lets a lookup that needs no more than the bank and the entry id (HMA's) answer a hit without reading the entry
    from the database."""

    def __init__(self, data: np.ndarray | None = None):
        self.banks = data if data is not None else np.zeros(1024, dtype=np.int32)

    def __contains__(self, entry_id: int) -> bool:
        return entry_id < len(self.banks) and bool(self.banks[entry_id])

    def bank(self, entry_id: int) -> int | None:
        """The id of the bank ``entry_id`` is in, None if the entry is not in the index."""
        bank = int(self.banks[entry_id]) if entry_id < len(self.banks) else 0
        return bank or None

    def count(self) -> int:
        return int(np.count_nonzero(self.banks))

    def set(self, entry_ids: np.ndarray, bank_ids: np.ndarray | int) -> None:
        """Put ``entry_ids`` in their banks (``bank_ids``, one per entry); bank 0 takes them out."""
        if len(entry_ids) == 0:
            return
        top = int(entry_ids.max())
        if top >= len(self.banks):
            grown = np.zeros(max(top + 1, 2 * len(self.banks)), dtype=np.int32)
            grown[: len(self.banks)] = self.banks
            self.banks = grown
        self.banks[entry_ids] = bank_ids


class BankIndex:
    """All matching indexes of one process. Thread-safe: scans query while a sync applies changes."""

    def __init__(self, db: Database, snapshot_dir: Path | None = None):
        self.db = db
        self.snapshot_dir = snapshot_dir
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        #: signal type -> its index
        self.indexes: dict[str, SignalIndex] = {}
        #: signal types met whose index could not be made (type not installed, broken index class)
        self.unindexable: set[str] = set()
        #: signal type -> the widest threshold of the enabled banks (forgotten when banks change)
        self._widest: dict[str, int] = {}
        self.entries = _EntryBanks()
        self.last_seq = 0
        self.last_at: str | None = None
        self.banks: dict[int, BankSettings] = {}
        self.changes_since_snapshot = 0
        #: ``time.monotonic()`` when :meth:`sync` last found nothing more to apply (None: never): readiness and
        #: the freshness metric (safehold.monitoring) tell a caught-up index from a stuck one by it.
        self.synced_at: float | None = None

    # ------------------------------------------------------------ loading

    def load(self) -> None:
        """Start from the snapshot when it still fits the database, else rebuild; then catch up."""
        with self._lock:
            if not (self.snapshot_dir and self._load_snapshot()):
                self._rebuild()
            for name in registry.all_signal_types():  # every index ready (and its code loaded) before a scan
                self._index_for(name)
            self._reload_banks()
            self.sync()

    def _rebuild(self) -> None:
        self._reset()
        with self.db.session() as s:
            self.last_seq = s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0
            self.last_at = self._seq_time(s, self.last_seq)
            q = (
                select(BankEntry.id, BankEntry.signal_type, BankEntry.value, BankEntry.bank_id)
                .where(BankEntry.enabled.is_(True))
                .order_by(BankEntry.id)
                .execution_options(yield_per=REPLAY_BATCH)
            )
            batch: list[tuple[int, str, str, int]] = []
            for row in s.execute(q):
                batch.append(tuple(row))
                if len(batch) >= REPLAY_BATCH:
                    self._apply_adds(batch)
                    batch = []
            self._apply_adds(batch)
        self.changes_since_snapshot = self.entries.count()

    @staticmethod
    def _seq_time(s, seq: int) -> str | None:
        at = s.scalar(select(IndexChange.at).where(IndexChange.seq == seq))
        return at.isoformat() if at else None

    def sync(self) -> int:
        """Apply every change since the last one seen; returns how many were applied."""
        applied = 0
        with self._lock:
            while True:
                with self.db.session() as s:
                    # An add names its entry's bank (an entry never moves); rows written before migration 0009
                    # do not, and take it from the entry's row — which an entry deleted since no longer has: its
                    # removal follows in the log, so its add is skipped.
                    rows = s.execute(
                        select(
                            IndexChange.seq,
                            IndexChange.op,
                            IndexChange.entry_id,
                            IndexChange.signal_type,
                            IndexChange.value,
                            IndexChange.at,
                            func.coalesce(IndexChange.bank_id, BankEntry.bank_id).label("bank_id"),
                        )
                        .outerjoin(BankEntry, and_(IndexChange.bank_id.is_(None), BankEntry.id == IndexChange.entry_id))
                        .where(IndexChange.seq > self.last_seq)
                        .order_by(IndexChange.seq)
                        .limit(REPLAY_BATCH)
                    ).all()
                if not rows:
                    self.synced_at = time.monotonic()
                    return applied
                self._replay(rows)
                applied += len(rows)
                self.changes_since_snapshot += len(rows)
                self.last_seq = rows[-1].seq
                self.last_at = rows[-1].at.isoformat()

    def _replay(self, rows) -> None:
        # Consecutive adds are applied in one batch; a remove or a bank change flushes them first so
        # the order of operations is kept.
        adds: list[tuple[int, str, str, int]] = []
        for r in rows:
            if r.op == "add":
                if r.bank_id is not None:
                    adds.append((r.entry_id, r.signal_type, r.value, r.bank_id))
                continue
            self._apply_adds(adds)
            adds = []
            if r.op == "remove":
                self._apply_remove(r.entry_id, r.signal_type)
            elif r.op == "banks":
                self._reload_banks()
        self._apply_adds(adds)

    def _apply_adds(self, rows: list[tuple[int, str, str, int]]) -> None:
        """Add ``(entry id, signal type, value, bank id)`` rows not in the index yet."""
        fresh = [r for r in rows if r[0] not in self.entries]
        if not fresh:
            return
        by_type: dict[str, list[tuple[int, str, str, int]]] = {}
        for row in fresh:
            by_type.setdefault(row[1], []).append(row)
        for signal_type, items in by_type.items():
            index = self._index_for(signal_type)
            if index is None:
                log.warning("no index for signal type %s; %d entries not matchable", signal_type, len(items))
                continue
            ids = np.fromiter((r[0] for r in items), dtype=np.int64, count=len(items))
            index.add(ids, [r[2] for r in items])
            self.entries.set(ids, np.fromiter((r[3] for r in items), dtype=np.int32, count=len(items)))

    def _index_for(self, signal_type: str) -> SignalIndex | None:
        """The index of ``signal_type``, made on first use from the type's ``index_cls()``; ``None`` when the
        type is not installed or its index cannot be made (remembered, so it is tried once per build)."""
        index = self.indexes.get(signal_type)
        if index is None and signal_type not in self.unindexable:
            try:
                index = registry.signal_type(signal_type).index_cls()()
            except Exception as e:  # noqa: BLE001 - an unknown type or a broken plug-in must not stop the others
                log.warning("signal type %s cannot be indexed: %s: %s", signal_type, type(e).__name__, e)
                self.unindexable.add(signal_type)
                return None
            self.indexes[signal_type] = index
        return index

    def _apply_remove(self, entry_id: int, signal_type: str) -> None:
        if entry_id not in self.entries:
            return
        ids = np.asarray([entry_id], dtype=np.int64)
        index = self.indexes.get(signal_type)
        if index is not None:
            index.remove(ids)
        self.entries.set(ids, 0)

    def _reload_banks(self) -> None:
        with self.db.session() as s:
            banks = s.scalars(select(Bank)).all()
            self.banks = {
                b.id: BankSettings(b.id, b.name, b.kind, dict(b.thresholds or {}), b.dihedral, b.enabled, b.on_match)
                for b in banks
            }
        self._widest = {}

    # ------------------------------------------------------------ queries

    def query_threshold(self, signal_type: str) -> int:
        """The widest threshold any enabled bank uses for ``signal_type`` (each bank's own is applied
        afterwards); -1 when no bank is enabled."""
        widest = self._widest.get(signal_type)
        if widest is None:
            widest = max((b.threshold(signal_type) for b in self.banks.values() if b.enabled), default=-1)
            self._widest[signal_type] = widest
        return widest

    @property
    def any_dihedral(self) -> bool:
        return any(b.dihedral and b.enabled for b in self.banks.values())

    def lookup(self, signal_type: str, value: str, *, variants: dict[str, str] | None = None) -> list[Candidate]:
        """Candidates for one signal. ``variants`` maps a variant name (e.g. a dihedral transform) to the value
        to look up for it (see :meth:`~safehold.signals.base.SignalType.query_variants`).

        Takes no lock: the indexes are safe to query while the sync thread writes to them.
        """
        index = self.indexes.get(signal_type)
        threshold = self.query_threshold(signal_type)
        if index is None or threshold < 0:
            return []
        if variants:
            names = ["original", *variants]
            found = index.query_batch([value, *variants.values()], threshold)
        else:
            names, found = ["original"], [index.query(value, threshold)]
        return [
            Candidate(hit[0], signal_type, hit[1], name, hit[2] if len(hit) > 2 else None)
            for name, hits in zip(names, found, strict=True)
            for hit in hits
        ]

    def stats(self) -> dict:
        with self._lock:
            return {
                "indexes": {name: len(index) for name, index in sorted(self.indexes.items())},
                "unindexable": sorted(self.unindexable),
                "last_seq": self.last_seq,
                "memory_bytes": sum(index.memory_bytes() for index in self.indexes.values())
                + self.entries.banks.nbytes,
            }

    # ----------------------------------------------------------- snapshots

    def save_snapshot(self) -> Path | None:
        """Write the indexes to disk (atomically: a new folder, then a rename) for a fast next start."""
        if not self.snapshot_dir:
            return None
        with self._lock:
            root = self.snapshot_dir
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = root / f"snapshot.tmp-{unique_suffix()}"
            tmp.mkdir(parents=True, exist_ok=False, mode=0o700)
            for name, index in self.indexes.items():
                index.save(tmp / f"{name}.idx")
            with open(tmp / "entry_banks.npy", "wb", opener=private_opener) as f:
                np.save(f, self.entries.banks)
            meta = {
                "version": SNAPSHOT_VERSION,
                "seq": self.last_seq,
                "at": self.last_at,
                "indexes": {name: _qualname(type(index)) for name, index in self.indexes.items()},
                "unindexable": sorted(self.unindexable),
            }
            with open(tmp / "meta.json", "w", opener=private_opener) as f:
                f.write(json.dumps(meta))
            final = root / "snapshot"
            _swap_in(tmp, final, root / f"snapshot.old-{unique_suffix()}")
            self.changes_since_snapshot = 0
            return final

    def _load_snapshot(self) -> bool:
        path = self.snapshot_dir / "snapshot"
        try:
            meta = json.loads((path / "meta.json").read_text())
            if meta.get("version") != SNAPSHOT_VERSION:
                return False
            with self.db.session() as s:
                # The snapshot fits only the database it came from: its last change must still be there.
                if meta["seq"] and self._seq_time(s, meta["seq"]) != meta["at"]:
                    log.info("index snapshot belongs to another database state; rebuilding")
                    return False
                if not meta["seq"] and s.scalar(select(func.count()).select_from(IndexChange)):
                    return False
            # Each index must still be made by the same class, and a type that could not be indexed then must
            # still be unindexable (else its entries, skipped then, would never be added): otherwise rebuild.
            classes = {name: self._index_class(name) for name in [*meta["indexes"], *meta["unindexable"]]}
            if any(classes[name] != meta["indexes"].get(name) for name in classes):
                log.info("signal types or their index classes changed since the index snapshot; rebuilding")
                return False
            self._reset()
            for name in meta["indexes"]:
                self.indexes[name] = registry.signal_type(name).index_cls().load(path / f"{name}.idx")
            self.unindexable = set(meta["unindexable"])
            self.entries = _EntryBanks(np.load(path / "entry_banks.npy"))
            self.last_seq, self.last_at = meta["seq"], meta["at"]
            return True
        except FileNotFoundError:
            return False
        except (SafeholdError, ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("index snapshot unusable (%s); rebuilding", exc)
            return False

    @staticmethod
    def _index_class(signal_type: str) -> str | None:
        """The qualified name of the class that indexes ``signal_type`` today, ``None`` if none can."""
        try:
            return _qualname(registry.signal_type(signal_type).index_cls())
        except Exception:  # noqa: BLE001 - as in _index_for: such a type is unindexable
            return None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _swap_in(tmp: Path, final: Path, old: Path) -> None:
    """Make the complete folder ``tmp`` the snapshot at ``final``, safe against another process (on this machine or
    another sharing the home) doing the same at once: each moves the current snapshot aside under its own unique
    name and deletes only that; if another snapshot lands at ``final`` between the two renames, ours is the one
    dropped (the other is as new), never the other's folder."""
    try:
        final.rename(old)
    except FileNotFoundError:
        pass  # no snapshot yet, or another process has just moved it aside
    try:
        tmp.rename(final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        log.info("another process wrote the index snapshot at the same time; keeping its copy")
    finally:
        shutil.rmtree(old, ignore_errors=True)
