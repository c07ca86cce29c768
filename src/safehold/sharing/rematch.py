"""Re-matching past uploads: a hash that arrives in a bank today — from an exchange or added by hand — is matched
against the hashes of content scanned before (the opt-in seen-hash store, :mod:`safehold.store.seen`), and each
earlier upload it matches gets a case, as if it had been scanned now.

One round (:meth:`Rematcher.run_once`, the periodic task ``seen.rematch``):

1. read the ``add`` changes of the bank change log after the round's own cursor (``app_settings``), at most the
   round's size; keep the entries of enabled block banks whose ``on_match`` opens cases;
2. read every stored hash of those types within retention, :data:`CHUNK` at a time, and match each chunk
   against the new entries with the type's own index class (PDQ's multi-index hashing, a dict for exact hashes;
   :func:`candidates` says which side is indexed): memory is bounded by the new entries and one chunk, never by
   the store (bench/rematch.py);
3. confirm each candidate as a scan of the stored hash would decide now (:meth:`ScanService.lookup_hash`: the
   bank's own threshold, the type's match rule, an allow bank vouching for the content) and hand the match to the
   pipeline, which opens or updates the content's case (source ``rematch``) under the idempotency key
   ``rematch:<entry id>:<content id>``: a round run twice, or a manual run over the same entries, opens nothing
   twice;
4. move the cursor past the entries read.

When the store is off the task does nothing; the first round after it is turned on starts the cursor at the log's
end (hashes seen from then on were scanned against every entry already there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select

from safehold.cases.detection import Detection
from safehold.errors import SafeholdError
from safehold.matching.protocol import SignalIndex
from safehold.pipeline.service import Pipeline, Submission
from safehold.scanning.service import ScanResult, ScanService
from safehold.signals import registry
from safehold.store.db import Database
from safehold.store.models import AppSetting, BankEntry, IndexChange, iso
from safehold.store.seen import Seen, SeenHashes

log = logging.getLogger(__name__)

#: Where the round's cursor (the last change-log ``seq`` re-matched) is kept.
CURSOR_KEY = "sharing.rematch"
#: New entries re-matched at a time by a manual run (the task's rounds have their own size).
ROUND_ENTRIES = 100_000
#: Stored hashes read and indexed at a time (a round's memory: a few hundred MB for PDQ, see bench/rematch.py).
CHUNK = 200_000
#: Up to this many new entries of a type are indexed themselves; more are queried against each chunk's index.
FEW_NEW = 128
#: Entry ids looked up per query (under SQLite's bound on variables).
_IDS_PER_QUERY = 10_000
ACTOR = "system:rematch"


@dataclass(frozen=True)
class NewEntry:
    """An ``add`` of the change log: a bank entry that may match something seen before."""

    seq: int
    entry_id: int
    signal_type: str
    value: str
    at: dt.datetime


@dataclass(frozen=True)
class Candidate:
    """A stored hash within its type's widest threshold of a new entry (confirmed per bank afterwards)."""

    seen: Seen
    entry_id: int
    distance: int


@dataclass
class Outcome:
    """What a re-match did: new entries considered, stored hashes read, candidates, cases opened or updated."""

    entries: int = 0
    scanned: int = 0
    candidates: int = 0
    cases: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"entries": self.entries, "scanned": self.scanned, "candidates": self.candidates, "cases": self.cases}


def candidates(
    entries: Sequence[NewEntry],
    thresholds: dict[str, int],
    chunks: Iterable[Sequence[Seen]],
    progress: Callable[[int], None] | None = None,
) -> Iterator[Candidate]:
    """Every stored hash (``chunks`` of them) within ``thresholds[type]`` of a new entry of its type. Entries of
    a type no longer installed are skipped.

    Which side is indexed depends on the count of new entries (bench/rematch.py measured both): a handful
    (up to :data:`FEW_NEW`) are indexed once and each chunk of stored hashes is queried against them; more are
    the queries against an index built over each chunk, which costs far less than querying a small index with
    every stored hash (PDQ, 10 000 entries: 10 M stored hashes in 30 s instead of some 470 s, bench/rematch.py).
    A type whose distance is not symmetric (``custom``) is always queried the first way, stored hash against
    entry, as a scan would be."""
    by_type: dict[str, list[NewEntry]] = {}
    for e in entries:
        by_type.setdefault(e.signal_type, []).append(e)
    kinds: dict[str, type] = {}
    fixed: dict[str, SignalIndex] = {}
    for signal_type, mine in by_type.items():
        try:
            st = registry.signal_type(signal_type)
            kinds[signal_type] = st.index_cls()
        except SafeholdError:
            log.warning("re-matching skips entries of %r: no such signal type is installed", signal_type)
            continue
        if len(mine) <= FEW_NEW or st.matching == "custom":
            fixed[signal_type] = _index(kinds[signal_type], [e.entry_id for e in mine], [e.value for e in mine])
    for chunk in chunks:
        rows_of: dict[str, list[Seen]] = {}
        for row in chunk:
            rows_of.setdefault(row.signal_type, []).append(row)
        for signal_type, rows in rows_of.items():
            if signal_type not in kinds:
                continue
            threshold, mine = thresholds[signal_type], by_type[signal_type]
            if signal_type in fixed:
                hits = fixed[signal_type].query_batch([r.value for r in rows], threshold)
                for row, found in zip(rows, hits, strict=True):
                    for hit in found:
                        yield Candidate(row, hit[0], hit[1])
            else:
                index = _index(kinds[signal_type], range(len(rows)), [r.value for r in rows])
                hits = index.query_batch([e.value for e in mine], threshold)
                for entry, found in zip(mine, hits, strict=True):
                    for hit in found:
                        yield Candidate(rows[hit[0]], entry.entry_id, hit[1])
        if progress is not None:
            progress(len(chunk))


def _index(cls: type, ids: Iterable[int], values: list[str]) -> SignalIndex:
    index = cls()
    index.add(np.fromiter(ids, dtype=np.int64, count=len(values)), values)
    return index


class Rematcher:
    def __init__(self, db: Database, seen: SeenHashes, scans: ScanService, pipeline: Pipeline):
        self.db = db
        self.seen = seen
        self.scans = scans
        self.pipeline = pipeline

    # ----------------------------------------------------------------- rounds

    def run_once(self, limit: int = ROUND_ENTRIES) -> int:
        """One round from the cursor over at most ``limit`` new entries (see the module docs); returns how many
        it read."""
        if not self.seen.enabled:
            return 0
        cursor = self._cursor()
        if cursor is None:
            self._save_cursor(self._log_end())
            return 0
        entries = self._adds(IndexChange.seq > cursor, limit=limit)
        if entries:
            self.rematch(entries)
            self._save_cursor(entries[-1].seq)
        return len(entries)

    def run_since(self, since: dt.datetime, progress: Callable[[int], None] | None = None) -> Outcome:
        """Re-match every entry added since ``since`` (``safehold seen rematch --since``), whatever the cursor,
        which it leaves where it is; what the rounds already found is not opened again (same keys)."""
        total, after = Outcome(), None
        while True:
            where = [IndexChange.at >= since] + ([IndexChange.seq > after] if after is not None else [])
            entries = self._adds(*where, limit=ROUND_ENTRIES)
            if not entries:
                return total
            done = self.rematch(entries, progress)
            total.entries += done.entries
            total.scanned += done.scanned
            total.candidates += done.candidates
            total.cases.extend(c for c in done.cases if c not in total.cases)
            after = entries[-1].seq

    def rematch(self, entries: Sequence[NewEntry], progress: Callable[[int], None] | None = None) -> Outcome:
        """Match ``entries`` against the stored hashes and open or update the matched contents' cases."""
        self.scans.index.sync()  # the banks' settings and entries as a scan would see them now
        live = self._opening(entries)
        out = Outcome(entries=len(live))
        if not live:
            return out
        banks = self.scans.index.banks
        widest: dict[str, int] = {}
        for e, bank_id in live:
            widest[e.signal_type] = max(widest.get(e.signal_type, 0), banks[bank_id].threshold(e.signal_type))
        news = [e for e, _ in live]

        def counted(n: int) -> None:
            out.scanned += n
            if progress is not None:
                progress(n)

        found: dict[tuple[int, str], Candidate] = {}  # the earliest sighting per (entry, content)
        for c in candidates(news, widest, self.seen.read(widest, chunk=CHUNK), counted):
            out.candidates += 1
            key = (c.entry_id, c.seen.content_id)
            if key not in found or c.seen.seen_at < found[key].seen.seen_at:
                found[key] = c
        added_at = {e.entry_id: e.at for e in news}
        scans: dict[tuple[str, str], ScanResult] = {}  # one lookup per stored hash, however many uploads share it
        for c in found.values():
            hashed = (c.seen.signal_type, c.seen.value)
            if hashed not in scans:
                scans[hashed] = self.scans.lookup_hash(*hashed)
            case = self._open(c, scans[hashed], added_at[c.entry_id])
            if case is not None and case not in out.cases:
                out.cases.append(case)
        return out

    # ----------------------------------------------------------------- cases

    def _open(self, c: Candidate, scan: ScanResult, added_at: dt.datetime) -> int | None:
        """Hand a confirmed match to the pipeline, once per (entry, content); the case's id, or ``None`` when the
        banks as they are now do not call it a match (``scan``, the stored hash scanned now: an allow bank
        vouches for it, the entry or bank is gone or disabled, the distance is over the bank's own threshold) or
        no case is opened."""
        matches = [m for m in scan.matches if m.entry.get("id") == c.entry_id]
        if scan.verdict != "match" or not matches:
            return None
        sub = Submission(
            Detection(source="rematch", content_id=c.seen.content_id, account_id=c.seen.account_id),
            scans=[ScanResult(verdict="match", media=None, signals=scan.signals, matches=matches)],
            source="rematch",
            sighting=False,
        )
        ruled = self.pipeline.rule(sub)
        if ruled is None:
            return None
        when = {"seen_at": iso(c.seen.seen_at), "entry_added_at": iso(added_at)}
        for sig in ruled.detection.signals:
            sig.detail["rematch"] = when
        key = f"rematch:{c.entry_id}:{c.seen.content_id}"
        digest = hashlib.sha256(key.encode()).hexdigest()
        answer = self.pipeline.commit(
            ruled, key=key, digest=digest, actor=ACTOR, answer=lambda ref: {"case": ref.id if ref else None}
        )
        return answer.get("case") if answer else None

    # ----------------------------------------------------------------- reads

    def _adds(self, *where, limit: int) -> list[NewEntry]:
        with self.db.session() as s:
            rows = s.execute(
                select(
                    IndexChange.seq, IndexChange.entry_id, IndexChange.signal_type, IndexChange.value, IndexChange.at
                )
                .where(IndexChange.op == "add", *where)
                .order_by(IndexChange.seq)
                .limit(limit)
            ).all()
        return [NewEntry(*r) for r in rows]

    def _opening(self, entries: Sequence[NewEntry]) -> list[tuple[NewEntry, int]]:
        """The entries still enabled in an enabled block bank whose matches open cases, with their bank's id."""
        banks = self.scans.index.banks
        bank_of: dict[int, int] = {}
        ids = sorted({e.entry_id for e in entries})
        with self.db.session() as s:
            for i in range(0, len(ids), _IDS_PER_QUERY):
                part = ids[i : i + _IDS_PER_QUERY]
                rows = s.execute(
                    select(BankEntry.id, BankEntry.bank_id).where(BankEntry.id.in_(part), BankEntry.enabled)
                ).all()
                bank_of.update(rows)
        out = {}  # by entry: an entry removed and added again is in the log twice
        for e in entries:
            bank = banks.get(bank_of.get(e.entry_id, -1))
            if bank is not None and bank.enabled and bank.kind == "block" and bank.on_match != "none":
                out[e.entry_id] = (e, bank.id)
        return list(out.values())

    def _cursor(self) -> int | None:
        with self.db.session() as s:
            row = s.get(AppSetting, CURSOR_KEY)
            return int(row.value["seq"]) if row is not None else None

    def _save_cursor(self, seq: int) -> None:
        """Move the cursor forward to ``seq``, never back (two processes' rounds may finish in either order)."""
        with self.db.session() as s:
            row = s.get(AppSetting, CURSOR_KEY, with_for_update=True)
            if row is None:
                s.add(AppSetting(key=CURSOR_KEY, value={"seq": seq}, updated_by=ACTOR))
            elif seq > int(row.value["seq"]):
                row.value = {"seq": seq}

    def _log_end(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0)))

    def status(self) -> dict:
        """The seen-hash store's status and how far re-matching got."""
        return {**self.seen.status(), "rematch_cursor": self._cursor()}
