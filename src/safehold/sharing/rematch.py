"""Re-matching past uploads: a hash that arrives in a bank today — from an exchange or added by hand — is matched
against the hashes of content scanned before (the opt-in seen-hash store, :mod:`safehold.store.seen`), and each
earlier upload it matches gets a case, as if it had been scanned now.

One round (:meth:`Rematcher.run_once`, the periodic task ``seen.rematch``):

1. read the ``add`` changes of the bank change log after the round's own cursor (``app_settings``), at most the
   round's size, and only those older than :attr:`Rematcher.lag` (the first younger one and those after it wait
   for the next round); keep the entries of enabled block banks whose ``on_match`` opens cases;
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

**Review, never automatic actions.** A re-match opens or updates a case for review even when the entry's bank is
``auto``: the content is old (up to ``SAFEHOLD_SEEN_HASHES_DAYS``) and matched by an entry nobody has seen match
anything yet, so a wrong entry (a meme, a blank frame) would otherwise act on months of uploads at once, before
the flood rule (``banks.flood_check``, :mod:`safehold.sharing.quarantine`) could count a single match.

**The flood rule inside the round.** An entry that re-matches more than ``SAFEHOLD_FLOOD_MIN_MATCHES`` earlier
uploads in one round is quarantined there (audited ``entry.quarantine``, its reason the numbers), and its
matches open at most that many cases per round (:meth:`Rematcher._flooded`), the most recent uploads first; the
others are counted in the reason, not opened. One bad entry cannot open a hundred thousand cases.

**The lag.** A scan's hashes wait in its process's buffer until the next flush (``counters.flush``, every
``SAFEHOLD_INDEX_SYNC_INTERVAL``): a round that read the store before then, for an entry added just after the
scan, would miss that upload and move its cursor past the entry for good. So a round only takes entries added at
least ``SAFEHOLD_INDEX_SYNC_INTERVAL`` + :data:`LAG_MARGIN` ago (the margin covers a slow flush and clock skew
between processes); by then every process has written the sightings that preceded them.

When the store is off the task does nothing; the first round after it is turned on starts the cursor at the log's
end (hashes seen from then on were scanned against every entry already there).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import func, select

from safehold.cases.detection import Detection
from safehold.errors import SafeholdError
from safehold.matching.protocol import SignalIndex
from safehold.pipeline.service import Pipeline, Submission
from safehold.scanning.service import ScanResult, ScanService
from safehold.sharing.quarantine import QuarantineService
from safehold.signals import registry
from safehold.store.db import Database
from safehold.store.models import AppSetting, BankEntry, IndexChange, iso, utcnow
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
#: Seconds added to ``SAFEHOLD_INDEX_SYNC_INTERVAL`` (how often each process flushes its seen hashes) to make the
#: round's lag (see the module docs): a flush slowed by a busy database, and clock skew between processes.
LAG_MARGIN = 30.0


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
    """What a re-match did: new entries considered, stored hashes read, candidates, cases opened or updated, the
    entries quarantined for flooding and the matches of theirs left unopened."""

    entries: int = 0
    scanned: int = 0
    candidates: int = 0
    cases: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    not_opened: int = 0

    def add(self, other: Outcome) -> None:
        self.entries += other.entries
        self.scanned += other.scanned
        self.candidates += other.candidates
        self.cases.extend(c for c in other.cases if c not in self.cases)
        self.quarantined.extend(other.quarantined)
        self.not_opened += other.not_opened

    def to_dict(self) -> dict:
        return {
            "entries": self.entries,
            "scanned": self.scanned,
            "candidates": self.candidates,
            "cases": self.cases,
            "quarantined": self.quarantined,
            "not_opened": self.not_opened,
        }


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


def _confirmed(scan: ScanResult, entry_id: int) -> list:
    """The matches on ``entry_id`` of a stored hash scanned now, none when the banks as they are now do not call
    it a match (an allow bank vouches for it, the entry or bank is gone or disabled, the distance is over the
    bank's own threshold)."""
    if scan.verdict != "match":
        return []
    return [m for m in scan.matches if m.entry.get("id") == entry_id]


def _index(cls: type, ids: Iterable[int], values: list[str]) -> SignalIndex:
    index = cls()
    index.add(np.fromiter(ids, dtype=np.int64, count=len(values)), values)
    return index


class Rematcher:
    def __init__(
        self,
        db: Database,
        seen: SeenHashes,
        scans: ScanService,
        pipeline: Pipeline,
        quarantine: QuarantineService,
        sync_interval: float,
    ):
        self.db = db
        self.seen = seen
        self.scans = scans
        self.pipeline = pipeline
        self.quarantine = quarantine
        #: How old a change-log add must be for a round to take it (see the module docs).
        self.lag = dt.timedelta(seconds=sync_interval + LAG_MARGIN)

    # ----------------------------------------------------------------- rounds

    def run_once(self, limit: int = ROUND_ENTRIES, now: dt.datetime | None = None) -> int:
        """One round from the cursor over at most ``limit`` new entries added :attr:`lag` before ``now`` or
        earlier (see the module docs); returns how many it read."""
        if not self.seen.enabled:
            return 0
        cursor = self._cursor()
        if cursor is None:
            self._save_cursor(self._log_end())
            return 0
        horizon = (now or utcnow()) - self.lag
        entries = self._adds(IndexChange.seq > cursor, limit=limit)
        young = next((i for i, e in enumerate(entries) if e.at > horizon), None)
        entries = entries[:young]  # in log order: nothing after a young entry is taken before it
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
            total.add(self.rematch(entries, progress))
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
        by_entry: dict[int, list[Candidate]] = {}
        for c in found.values():
            by_entry.setdefault(c.entry_id, []).append(c)
        scans: dict[tuple[str, str], ScanResult] = {}  # one lookup per stored hash, however many uploads share it
        cap = self.quarantine.rule.floor
        for entry_id, mine in by_entry.items():
            confirmed = []
            for c in sorted(mine, key=lambda c: (c.seen.seen_at, c.seen.content_id), reverse=True):
                hashed = (c.seen.signal_type, c.seen.value)
                if hashed not in scans:
                    scans[hashed] = self.scans.lookup_hash(*hashed)
                matches = _confirmed(scans[hashed], entry_id)
                if matches:
                    confirmed.append((c, scans[hashed], matches))
            flood = None
            if len(confirmed) > cap:
                flood = self._flooded(entry_id, len(confirmed), cap, out)
            for c, scan, matches in confirmed[:cap]:
                case = self._open(c, scan, matches, added_at[entry_id], flood)
                if case is not None and case not in out.cases:
                    out.cases.append(case)
        return out

    def _flooded(self, entry_id: int, matched: int, cap: int, out: Outcome) -> dict:
        """The flood rule inside the round (see the module docs): quarantine the entry, which opens only ``cap``
        cases; the numbers, for the cases' signals."""
        flood = {"matches": matched, "cases_opened": cap, "not_opened": matched - cap, "floor": cap}
        log.warning("re-matching: entry %s matched %s earlier uploads in one round; quarantined", entry_id, matched)
        if self.quarantine.flood_in_rematch(entry_id, matched, cap) is not None:
            out.quarantined.append(entry_id)
        out.not_opened += matched - cap
        return flood

    # ----------------------------------------------------------------- cases

    def _open(
        self, c: Candidate, scan: ScanResult, matches: list, added_at: dt.datetime, flood: dict | None
    ) -> int | None:
        """Hand a confirmed match (:func:`_confirmed`) to the pipeline, once per (entry, content), for review only
        (no automatic action, see the module docs); the case's id, or ``None`` when no case is opened."""
        sub = Submission(
            Detection(source="rematch", content_id=c.seen.content_id, account_id=c.seen.account_id),
            scans=[ScanResult(verdict="match", media=None, signals=scan.signals, matches=matches)],
            source="rematch",
            sighting=False,
        )
        ruled = self.pipeline.rule(sub)
        if ruled is None:
            return None
        ruled = replace(ruled, auto=[])
        when = {"seen_at": iso(c.seen.seen_at), "entry_added_at": iso(added_at), "review_only": True}
        if flood is not None:
            when["flood"] = flood
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
