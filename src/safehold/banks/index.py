"""The per-process matching indexes over every enabled bank entry, kept in step with the database.

Built once from the database (or loaded from a snapshot on disk for a fast start), then updated
incrementally by replaying ``index_changes`` — never rebuilt per change. Replay is idempotent (an entry is
added at most once and removing an absent entry does nothing), so re-reading a change twice is harmless.

Bank settings (threshold, kind, dihedral, enabled) are *not* baked into the index: the index holds every
enabled entry and the scanner applies each bank's settings to the few candidates it returns. Changing a
threshold or disabling a bank therefore costs nothing here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from safehold.errors import SafeholdError
from safehold.home import private_opener
from safehold.matching.exact_index import ExactIndex
from safehold.matching.pdq_index import PdqIndex, hashes_from_hex
from safehold.signals import registry
from safehold.signals.vpdq import VPDQ_DISTANCE_THRESHOLD, VpdqSignal, parse_vpdq
from safehold.store.db import Database
from safehold.store.models import Bank, BankEntry, IndexChange

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
REPLAY_BATCH = 20_000


@dataclass(frozen=True)
class BankSettings:
    id: int
    name: str
    kind: str
    pdq_threshold: int
    dihedral: bool
    enabled: bool


@dataclass(frozen=True)
class Candidate:
    """An entry the index found for a signal; ``variant`` names the dihedral transform that matched."""

    entry_id: int
    signal_type: str
    distance: int
    variant: str = "original"
    extra: dict | None = None


class _Present:
    """A growable bitmap of entry ids in the index: one byte per id, not a Python object per entry."""

    def __init__(self, data: np.ndarray | None = None):
        self.bits = data if data is not None else np.zeros(1024, dtype=np.bool_)

    def __contains__(self, entry_id: int) -> bool:
        return entry_id < len(self.bits) and bool(self.bits[entry_id])

    def set(self, entry_ids: np.ndarray, value: bool) -> None:
        if len(entry_ids) == 0:
            return
        top = int(entry_ids.max())
        if top >= len(self.bits):
            grown = np.zeros(max(top + 1, 2 * len(self.bits)), dtype=np.bool_)
            grown[: len(self.bits)] = self.bits
            self.bits = grown
        self.bits[entry_ids] = value


class BankIndex:
    """All matching indexes of one process. Thread-safe: scans query while a sync applies changes."""

    def __init__(self, db: Database, snapshot_dir: Path | None = None):
        self.db = db
        self.snapshot_dir = snapshot_dir
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.pdq = PdqIndex()
        self.exact: dict[str, ExactIndex] = {}
        self.vpdq_frames = PdqIndex()
        self.vpdq_entries: dict[int, tuple[str, list]] = {}  # entry id -> (value, parsed frames)
        self._frame_owner: list[int] = []  # frame id -> entry id
        self._entry_frames: dict[int, np.ndarray] = {}
        self.present = _Present()
        self.last_seq = 0
        self.last_at: str | None = None
        self.banks: dict[int, BankSettings] = {}
        self.changes_since_snapshot = 0

    # ------------------------------------------------------------ loading

    def load(self) -> None:
        """Start from the snapshot when it still fits the database, else rebuild; then catch up."""
        with self._lock:
            if not (self.snapshot_dir and self._load_snapshot()):
                self._rebuild()
            self._reload_banks()
            self.sync()

    def _rebuild(self) -> None:
        self._reset()
        with self.db.session() as s:
            self.last_seq = s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0
            self.last_at = self._seq_time(s, self.last_seq)
            q = (
                select(BankEntry.id, BankEntry.signal_type, BankEntry.value)
                .where(BankEntry.enabled.is_(True))
                .order_by(BankEntry.id)
                .execution_options(yield_per=REPLAY_BATCH)
            )
            batch: list[tuple[int, str, str]] = []
            for row in s.execute(q):
                batch.append(tuple(row))
                if len(batch) >= REPLAY_BATCH:
                    self._apply_adds(batch)
                    batch = []
            self._apply_adds(batch)
        self.changes_since_snapshot = int(self.present.bits.sum())

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
                    rows = s.execute(
                        select(
                            IndexChange.seq,
                            IndexChange.op,
                            IndexChange.entry_id,
                            IndexChange.signal_type,
                            IndexChange.value,
                            IndexChange.at,
                        )
                        .where(IndexChange.seq > self.last_seq)
                        .order_by(IndexChange.seq)
                        .limit(REPLAY_BATCH)
                    ).all()
                if not rows:
                    return applied
                self._replay(rows)
                applied += len(rows)
                self.changes_since_snapshot += len(rows)
                self.last_seq = rows[-1].seq
                self.last_at = rows[-1].at.isoformat()

    def _replay(self, rows) -> None:
        # Consecutive adds are applied in one batch; a remove or a bank change flushes them first so
        # the order of operations is kept.
        adds: list[tuple[int, str, str]] = []
        for r in rows:
            if r.op == "add":
                adds.append((r.entry_id, r.signal_type, r.value))
                continue
            self._apply_adds(adds)
            adds = []
            if r.op == "remove":
                self._apply_remove(r.entry_id, r.signal_type)
            elif r.op == "banks":
                self._reload_banks()
        self._apply_adds(adds)

    def _apply_adds(self, rows: list[tuple[int, str, str]]) -> None:
        fresh = [r for r in rows if r[0] not in self.present]
        if not fresh:
            return
        by_type: dict[str, list[tuple[int, str]]] = {}
        for entry_id, signal_type, value in fresh:
            by_type.setdefault(signal_type, []).append((entry_id, value))
        added: list[int] = []
        for signal_type, items in by_type.items():
            ids = np.fromiter((i for i, _ in items), dtype=np.int64, count=len(items))
            if signal_type == "pdq":
                self.pdq.add(ids, hashes_from_hex([v for _, v in items]))
            elif signal_type == "vpdq":
                for entry_id, value in items:
                    self._add_vpdq(entry_id, value)
            elif self._matching(signal_type) == "exact":
                self.exact.setdefault(signal_type, ExactIndex()).add(ids, [v for _, v in items])
            else:
                log.warning("no index for signal type %s; %d entries not matchable", signal_type, len(items))
                continue
            added.extend(int(i) for i in ids)
        self.present.set(np.asarray(added, dtype=np.int64), True)

    @staticmethod
    def _matching(signal_type: str) -> str | None:
        try:
            return registry.signal_type(signal_type).matching
        except SafeholdError:
            return None

    def _apply_remove(self, entry_id: int, signal_type: str) -> None:
        if entry_id not in self.present:
            return
        ids = np.asarray([entry_id], dtype=np.int64)
        if signal_type == "pdq":
            self.pdq.remove(ids)
        elif signal_type == "vpdq":
            frames = self._entry_frames.pop(entry_id, None)
            if frames is not None:
                self.vpdq_frames.remove(frames)
            self.vpdq_entries.pop(entry_id, None)
        elif signal_type in self.exact:
            self.exact[signal_type].remove(ids)
        self.present.set(ids, False)

    def _add_vpdq(self, entry_id: int, value: str) -> None:
        frames = parse_vpdq(value)
        if not frames:
            return
        first = len(self._frame_owner)
        frame_ids = np.arange(first, first + len(frames), dtype=np.int64)
        self._frame_owner.extend([entry_id] * len(frames))
        self.vpdq_frames.add(frame_ids, hashes_from_hex([f.pdq_hex for f in frames]))
        self._entry_frames[entry_id] = frame_ids
        self.vpdq_entries[entry_id] = (value, frames)

    def _reload_banks(self) -> None:
        with self.db.session() as s:
            banks = s.scalars(select(Bank)).all()
            self.banks = {
                b.id: BankSettings(b.id, b.name, b.kind, b.pdq_threshold, b.dihedral, b.enabled) for b in banks
            }

    # ------------------------------------------------------------ queries

    @property
    def pdq_query_threshold(self) -> int:
        """The widest threshold any enabled bank asks for (each bank's own is applied afterwards)."""
        return max((b.pdq_threshold for b in self.banks.values() if b.enabled), default=-1)

    @property
    def any_dihedral(self) -> bool:
        return any(b.dihedral and b.enabled for b in self.banks.values())

    def lookup(self, signal_type: str, value: str, *, variants: dict[str, str] | None = None) -> list[Candidate]:
        """Candidates for one signal. ``variants`` maps a dihedral transform name to its PDQ hash.

        Takes no lock: the indexes are safe to query while the sync thread writes to them.
        """
        if signal_type == "pdq":
            threshold = self.pdq_query_threshold
            if threshold < 0 or len(self.pdq) == 0:
                return []
            names = ["original", *(variants or {})]
            hashes = hashes_from_hex([value, *(variants or {}).values()])
            return [
                Candidate(entry_id=int(i), signal_type="pdq", distance=int(d), variant=name)
                for name, hits in zip(names, self.pdq.query_batch(hashes, threshold), strict=True)
                for i, d in hits
            ]
        if signal_type == "vpdq":
            return self._lookup_vpdq(value)
        index = self.exact.get(signal_type)
        if index is None:
            return []
        return [Candidate(entry_id=int(i), signal_type=signal_type, distance=0) for i in index.query(value)]

    def _lookup_vpdq(self, value: str) -> list[Candidate]:
        """Find videos sharing frames with the query, then apply Meta's vPDQ rule to each."""
        frames = parse_vpdq(value)
        if not frames or len(self.vpdq_frames) == 0:
            return []
        hashes = hashes_from_hex([f.pdq_hex for f in frames])
        owners: set[int] = set()
        for hits in self.vpdq_frames.query_batch(hashes, VPDQ_DISTANCE_THRESHOLD):
            owners.update(self._frame_owner[int(i)] for i, _ in hits)
        out = []
        for entry_id in sorted(owners):
            target = self.vpdq_entries.get(entry_id)
            if target is None:  # removed since the frame query
                continue
            cmp = VpdqSignal.compare(frames, target[1])
            out.append(
                Candidate(
                    entry_id=entry_id,
                    signal_type="vpdq",
                    distance=0,
                    extra={
                        "query_match_percent": round(cmp.query_match_percent, 2),
                        "target_match_percent": round(cmp.target_match_percent, 2),
                        "is_match": cmp.is_match,
                    },
                )
            )
        return out

    def stats(self) -> dict:
        with self._lock:
            return {
                "pdq": len(self.pdq),
                "vpdq_videos": len(self.vpdq_entries),
                "vpdq_frames": len(self.vpdq_frames),
                "exact": {k: len(v) for k, v in self.exact.items()},
                "last_seq": self.last_seq,
                "memory_bytes": self.pdq.memory_bytes() + self.vpdq_frames.memory_bytes(),
            }

    # ----------------------------------------------------------- snapshots

    def save_snapshot(self) -> Path | None:
        """Write the indexes to disk (atomically: a new folder, then a rename) for a fast next start."""
        if not self.snapshot_dir:
            return None
        with self._lock:
            root = self.snapshot_dir
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = root / f"snapshot.tmp-{os.getpid()}-{threading.get_ident()}"
            tmp.mkdir(parents=True, exist_ok=False, mode=0o700)
            self.pdq.save(tmp / "pdq.idx")
            for name, idx in self.exact.items():
                idx.save(tmp / f"exact-{name}.idx")
            with open(tmp / "present.npy", "wb", opener=private_opener) as f:
                np.save(f, self.present.bits)
            with open(tmp / "vpdq.jsonl", "w", opener=private_opener) as f:
                for entry_id, (value, _) in self.vpdq_entries.items():
                    f.write(json.dumps([entry_id, value]) + "\n")
            meta = {
                "version": SNAPSHOT_VERSION,
                "seq": self.last_seq,
                "at": self.last_at,
                "exact": sorted(self.exact),
            }
            with open(tmp / "meta.json", "w", opener=private_opener) as f:
                f.write(json.dumps(meta))
            final = root / "snapshot"
            old = root / f"snapshot.old-{os.getpid()}"
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            if old.exists():
                shutil.rmtree(old)
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
            self._reset()
            self.pdq = PdqIndex.load(path / "pdq.idx")
            for name in meta["exact"]:
                self.exact[name] = ExactIndex.load(path / f"exact-{name}.idx")
            self.present = _Present(np.load(path / "present.npy"))
            with open(path / "vpdq.jsonl") as f:
                for line in f:
                    entry_id, value = json.loads(line)
                    self._add_vpdq(entry_id, value)
            self.last_seq, self.last_at = meta["seq"], meta["at"]
            return True
        except FileNotFoundError:
            return False
        except (SafeholdError, ValueError, KeyError, OSError) as exc:
            log.warning("index snapshot unusable (%s); rebuilding", exc)
            return False
