"""Daily facts and the figures summed from them.

``Facts.figures(period, filters, as_of)`` is the one way any surface gets numbers; ``Facts.records(key, period,
filters, row)`` lists the records behind one row of a figure (the drill-down), from the same predicates.

The facts (``transparency_facts``) are rolled up per UTC day by each family of :data:`families.FAMILIES`: a few
rows a day per combination of dimensions, so a year of a million cases is thousands of rows and a figure for any
period is a sum over them. A day's facts change only while its records do, so :meth:`Facts.refresh` rolls up
again only the days from the last refresh (less :data:`SETTLE`, for records written late) to today, plus the
earlier days a family says are still open (:meth:`stale_days`); :meth:`Facts.rebuild` redoes any range (after a
backdated import). Both write at most :data:`CHUNK_DAYS` days a transaction, so a refresh far behind (the first
overview after an upgrade or a long pause) never holds the writer lock for all of it; it still runs inside the
request that found the facts stale, which is why ``safehold transparency rebuild`` after an upgrade is advised.
Writing a family's facts always starts by locking its ``transparency_refresh`` row (``SELECT … FOR UPDATE`` on
PostgreSQL, a write on SQLite, which takes the database's writer lock): two processes refreshing at once take
turns, and a chunk replaces whole days, so nothing is counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import AuditRecord, Case, TransparencyFact, TransparencyRefresh, utcnow
from safehold.transparency import families as fam
from safehold.transparency.families import Family
from safehold.transparency.families.sql import StoredFacts, as_day, dialect, dims_key, owned
from safehold.transparency.figures import CATALOGUE, FILTERS, Figure, FigureSet
from safehold.transparency.periods import EARLIEST, Period

log = logging.getLogger(__name__)

#: How far before the last refresh the next one starts again: a record written late (a slow transaction, a clock a
#: little behind) still lands in a day that is rolled up again.
SETTLE = dt.timedelta(days=1)
#: Days rolled up per transaction by a rebuild (and a first refresh): bounded work between progress reports.
CHUNK_DAYS = 31
#: The note of a catalogue figure no installed family fills.
NOT_COMPUTED = "not computed yet"
#: Row values a drill-down accepts (dimension values are short codes, names and ISO days).
MAX_ROW_VALUE = 200

Progress = Callable[[int, int], None]


def check_filters(filters: dict[str, str] | None) -> dict[str, str]:
    """The filters with empty values dropped; an unknown filter is ``transparency.bad_filter`` (400)."""
    clean = {k: v for k, v in (filters or {}).items() if v}
    unknown = sorted(set(clean) - set(FILTERS))
    if unknown:
        raise SafeholdError(
            "transparency.bad_filter",
            f"Unknown filter {unknown[0]!r}; the figures filter by {', '.join(FILTERS)}.",
            status=400,
        )
    return clean


def check_row(key: str, row: dict[str, str] | None) -> dict[str, str]:
    """The drill-down row for figure ``key``: dimension names of its spec only, short values (400
    ``transparency.bad_row``); a dimension left out is not constrained."""
    spec = CATALOGUE[key]
    clean = {k: str(v) for k, v in (row or {}).items()}
    unknown = sorted(set(clean) - set(spec.dims))
    if unknown:
        raise SafeholdError(
            "transparency.bad_row",
            f"Figure {key!r} has no column {unknown[0]!r}; its rows are named by {', '.join(spec.dims)}.",
            status=400,
        )
    if any(len(v) > MAX_ROW_VALUE for v in clean.values()):
        raise SafeholdError("transparency.bad_row", f"A row value is at most {MAX_ROW_VALUE} characters.", status=400)
    if "day" in clean:
        try:
            dt.date.fromisoformat(clean["day"])
        except ValueError:
            raise SafeholdError(
                "transparency.bad_row", f"The day {clean['day']!r} is not a date (YYYY-MM-DD).", status=400
            ) from None
    return clean


class Facts:
    def __init__(self, db: Database, refresh_seconds: float = 10.0, families: list[Family] | None = None):
        self.db = db
        #: ``figures()`` rolls up again first when the last refresh is older than this.
        self.refresh_seconds = refresh_seconds
        self.families = fam.FAMILIES if families is None else families
        owners = {k: f for f in self.families for k in f.keys}
        self._owner: dict[str, Family] = owners

    # ------------------------------------------------------------------------------------------- the figures

    def figures(
        self, period: Period, filters: dict[str, str] | None = None, as_of: dt.datetime | None = None
    ) -> FigureSet:
        """Every catalogue figure for ``period`` (facts refreshed first when older than ``refresh_seconds``)."""
        clean = check_filters(filters)
        as_of = as_of or dt.datetime.now(dt.UTC)
        self.refresh_if_stale()
        out: dict[str, Figure] = {}
        with self.db.session() as s:
            for family in self.families:
                out.update(family.fill(self._reader(s, family.name), s, period, clean, as_of))
        figures = {k: out.get(k) or Figure(spec, (), NOT_COMPUTED) for k, spec in CATALOGUE.items()}
        return FigureSet(period, as_of, figures, clean)

    def records(self, key: str, period: Period, filters: dict[str, str] | None, row: dict[str, str]) -> Iterator[dict]:
        """The records behind the row ``row`` of figure ``key``, streamed (no cap): checked here, listed as the
        caller iterates."""
        spec = CATALOGUE.get(key)
        if spec is None:
            raise SafeholdError("transparency.unknown_figure", f"No figure {key!r}.", status=404)
        if spec.records is None:
            raise SafeholdError(
                "transparency.no_records",
                f"Figure {key!r} is summed from counters that keep no record per item: it has no drill-down.",
                status=400,
            )
        clean = check_filters(filters)
        wanted = {k: v for k, v in clean.items() if k in spec.filters}
        cells = check_row(key, row)
        owner = self._owner.get(key)
        if owner is None:
            raise SafeholdError("transparency.unknown_figure", f"Figure {key!r} is {NOT_COMPUTED}.", status=404)
        return self._stream(owner, key, period, wanted, cells)

    def _stream(self, owner: Family, key: str, period: Period, filters: dict, row: dict) -> Iterator[dict]:
        with self.db.session() as s:
            yield from owner.records(s, key, period, filters, row)

    @staticmethod
    def _reader(s: Session, name: str) -> StoredFacts:
        return StoredFacts(s, name)

    # ------------------------------------------------------------------------------------------- the facts

    def refresh_if_stale(self) -> bool:
        """Refresh when any family's facts are older than ``refresh_seconds`` (one small read otherwise). When the
        store is too busy to refresh (a lock held past its timeout), figures are read from the facts already
        rolled up — a few seconds old — rather than failing the page."""
        with self.db.session() as s:
            states = dict(s.execute(select(TransparencyRefresh.family, TransparencyRefresh.refreshed_at)).all())
        now = utcnow()
        if all(self._fresh(states.get(f.name), now) for f in self.families):
            return False
        try:
            self.refresh(now)
        except OperationalError as exc:  # the store busy past its lock timeout (a long writer on SQLite)
            if not all(states.get(f.name) for f in self.families):
                raise  # never rolled up: there is nothing to show instead
            log.warning("transparency facts not refreshed, the stored ones are shown (%s)", type(exc).__name__)
            return False
        return True

    def _fresh(self, refreshed_at: dt.datetime | None, now: dt.datetime) -> bool:
        return refreshed_at is not None and (now - refreshed_at).total_seconds() < self.refresh_seconds

    def refresh(self, now: dt.datetime | None = None, *, force: bool = False) -> dict[str, int]:
        """Roll up again the days that can still change, per family: from its last refresh less :data:`SETTLE` to
        today, and the earlier days it names as still open; everything from its first record the first time. A
        family refreshed by another process within ``refresh_seconds`` is left alone unless ``force``. Returns
        the days rolled up per family."""
        now = now or utcnow()
        done: dict[str, int] = {}
        for family in self.families:
            with self.db.session() as s:
                state = self._lock(s, family.name)
                if state is not None and not force and self._fresh(state, now):
                    done[family.name] = 0
                    continue
                days = self._days_to_refresh(s, family, state, now) if state is not None else None
            if days is None:  # the first refresh: everything from the first record
                days = _span(self._first_day(family), now.date() + dt.timedelta(days=1))
            done[family.name] = self._roll(family, days, None, now)
        return done

    def _days_to_refresh(self, s: Session, family: Family, last: dt.datetime, now: dt.datetime) -> list[dt.date]:
        """From the last refresh less :data:`SETTLE` to today, and the earlier days the family names as open."""
        today = now.date()
        start = min((last - SETTLE).date(), today)
        days = set(_span(start, today + dt.timedelta(days=1)))
        days |= set(_stale_days(family, s, self._reader(s, family.name), start))
        return sorted(days)

    def rebuild(
        self, start_day: dt.date | None = None, end_day: dt.date | None = None, progress: Progress | None = None
    ) -> int:
        """Roll up the days ``[start_day, end_day]`` again (both included; default: from the first record to
        today), e.g. after records were imported with past dates. ``progress(done, total)`` is called after each
        chunk of days. Returns the number of days rolled up (per family, summed)."""
        now = utcnow()
        end = (end_day or now.date()) + dt.timedelta(days=1)
        starts = {f.name: start_day or self._first_day(f) for f in self.families}
        total = sum(max(0, (end - starts[f.name]).days) for f in self.families)
        tick = _Ticker(progress, total)
        for family in self.families:
            self._roll(family, _span(starts[family.name], end), tick, now if end_day is None else None)
        return total

    def _roll(self, family: Family, days: list[dt.date], tick: _Ticker | None, mark: dt.datetime | None) -> int:
        """Roll up ``days`` (sorted) again, at most :data:`CHUNK_DAYS` a transaction, each taking the family's
        lock: a refresh far behind (after an upgrade, or a long pause) never holds the writer lock for all of it
        at once, and a figure read between two chunks sums whole days. ``mark``: the refresh time recorded
        after the last chunk. Returns the number of days."""
        for a, b in _runs(days):
            while a < b:
                stop = min(a + dt.timedelta(days=CHUNK_DAYS), b)
                with self.db.session() as s:
                    self._lock(s, family.name)
                    self._replace(s, family, a, stop)
                if tick:
                    tick((stop - a).days)
                a = stop
        if mark is not None:
            with self.db.session() as s:
                self._lock(s, family.name)
                self._mark(s, family.name, mark)
        return len(days)

    def status(self) -> list[dict]:
        """Per family: when its facts were last refreshed, how many fact rows it has and the days they cover."""
        with self.db.session() as s:
            states = dict(s.execute(select(TransparencyRefresh.family, TransparencyRefresh.refreshed_at)).all())
            out = []
            for family in self.families:
                rows, first, last = s.execute(
                    select(func.count(), func.min(TransparencyFact.day), func.max(TransparencyFact.day)).where(
                        owned(family.name)
                    )
                ).one()
                at = states.get(family.name)
                out.append(
                    {
                        "family": family.name,
                        "figures": list(family.keys),
                        "refreshed_at": at.isoformat() if at else None,
                        "facts": rows,
                        "first_day": as_day(first).isoformat() if first else None,
                        "last_day": as_day(last).isoformat() if last else None,
                    }
                )
        return out

    # ------------------------------------------------------------------------------------------- writing

    @staticmethod
    def _lock(s: Session, name: str) -> dt.datetime | None:
        """Take family ``name``'s refresh lock for this transaction (creating its row the first time) and return
        its last refresh time. On SQLite the insert is the lock: any write takes the database's writer lock."""
        ins = (pg_insert if dialect(s) == "postgresql" else sqlite_insert)(TransparencyRefresh)
        s.execute(ins.values(family=name, refreshed_at=None).on_conflict_do_nothing(index_elements=["family"]))
        q = select(TransparencyRefresh.refreshed_at).where(TransparencyRefresh.family == name).with_for_update()
        return s.scalar(q)

    @staticmethod
    def _mark(s: Session, name: str, at: dt.datetime) -> None:
        s.execute(update(TransparencyRefresh).where(TransparencyRefresh.family == name).values(refreshed_at=at))

    @staticmethod
    def _replace(s: Session, family: Family, start: dt.date, end: dt.date) -> None:
        """Replace the family's facts of days ``[start, end)`` with a fresh roll-up (the caller holds the lock)."""
        s.execute(
            delete(TransparencyFact).where(
                TransparencyFact.day >= start, TransparencyFact.day < end, owned(family.name)
            )
        )
        at = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
        to = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC)
        rows = [
            {"day": f.day, "family": f.family, "dims": dims_key(f.dims), "value": f.value, "total": f.total}
            for f in family.rollup(s, at, to)
            if f.value
        ]
        if rows:
            s.execute(insert(TransparencyFact), rows)

    def _first_day(self, family: Family) -> dt.date:
        """The first day with a record: the family's own answer if it has one, else the first case or audit
        record (every change the system makes is audited), else today."""
        with self.db.session() as s:
            own = getattr(family, "first_day", None)
            if own is not None:
                day = own(s)
            else:
                firsts = [s.scalar(select(func.min(Case.opened_at))), s.scalar(select(func.min(AuditRecord.at)))]
                known = [d for d in firsts if d is not None]
                day = min(known).date() if known else None
        return max(day or utcnow().date(), EARLIEST)


def _stale_days(family: Family, s: Session, read, start: dt.date) -> list[dt.date]:
    """Days before ``start`` whose facts the family says can still change (optional ``stale_days`` method)."""
    hook = getattr(family, "stale_days", None)
    return [d for d in (hook(s, read, start) if hook else ()) if d < start]


def _span(start: dt.date, end: dt.date) -> list[dt.date]:
    """The days of ``[start, end)``."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


def _runs(days: list[dt.date]) -> Iterator[tuple[dt.date, dt.date]]:
    """Sorted days as half-open ranges of consecutive days."""
    run_start = prev = None
    for d in days:
        if prev is not None and d == prev + dt.timedelta(days=1):
            prev = d
            continue
        if run_start is not None:
            yield run_start, prev + dt.timedelta(days=1)
        run_start = prev = d
    if run_start is not None:
        yield run_start, prev + dt.timedelta(days=1)


class _Ticker:
    """Counts days done for a rebuild's progress callback."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, days: int) -> None:
        self.done += days
        if self.progress:
            self.progress(self.done, self.total)
