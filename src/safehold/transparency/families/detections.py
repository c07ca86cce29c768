"""Detections: what the detectors found (case signals by detector, bank and exchange, classifier and label), the
scan and search counters, and how often reviewers found a detector's cases not violating.

Daily facts (``family`` values), each with the case's ``source`` and ``queue`` so a figure honouring those filters
can apply them:

- ``detections.signals`` / ``detections.signal_cases`` — signals per signal source (``signal``);
- ``detections.matches`` / ``detections.match_cases`` — hash-match signals per ``bank`` and ``exchange``;
- ``detections.hits`` / ``detections.hit_cases`` — classifier signals per ``classifier`` and ``label``;
- ``detections.reviews`` — closed cases per detector (``detector_kind``, ``detector``): ``value`` reviewed cases,
  ``total`` those closed ``not_violating`` (:data:`~safehold.cases.taxonomy.MATCH_OUTCOMES`);
- ``detections.scans`` (``media``, ``verdict``) and ``detections.search`` (``kind``, ``action``, ``category``) —
  the aggregate counters, already one row per day.

A signal counts on the UTC day it was recorded. A distinct-cases count cannot be summed over days (a case with
signals on two days would count twice), so a ``*_cases`` fact counts a case once, on the day of its **first**
signal of that kind (same signal source; same bank and exchange; same classifier and label), wherever that first
signal lies: the ``cases`` of a period are the cases whose first signal of the row's kind was recorded in it. A
reviewed case counts on the day it was closed (a case has one closing time, so days add up).

The exchange of a hash match is the exchange publishing the matched entry when the facts are rolled up (a
``bank_entry_publishers`` row ``exchange:<id>`` of an exchange feeding the entry's bank); an entry published by
several exchanges is counted under the first configured (lowest id), so each match is in exactly one row; ``''``
for the platform's own entries.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import String, and_, case, cast, func, literal, select, true, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from safehold.banks.service import EXCHANGE_PUBLISHER
from safehold.cases.taxonomy import MATCH_OUTCOMES
from safehold.errors import SafeholdError
from safehold.store.models import BankEntry, BankEntryPublisher, Case, CaseSignal, ExchangeRow, ScanCount, SearchCount
from safehold.transparency.families import Fact, FactReader
from safehold.transparency.figures import CATALOGUE, Figure
from safehold.transparency.periods import Period

NAME = "detections"
#: The case's dimensions every signal fact carries (the figures' filters).
CASE_DIMS = ("source", "queue")
#: Text detectors: their signals' source names the detector.
TEXT_DETECTORS = ("grooming", "solicitation")
#: Drill-down rows are read from the database this many at a time (no cap on the total).
STREAM_BATCH = 2000


def _exchange() -> ColumnElement:
    """The name of the first configured exchange publishing a signal's matched entry, ``''`` when none does (a
    correlated subquery: one index probe on the entry's publishers per signal)."""
    publisher = literal(EXCHANGE_PUBLISHER, String) + cast(ExchangeRow.id, String)
    name = (
        select(ExchangeRow.name)
        .select_from(BankEntryPublisher)
        .join(BankEntry, BankEntry.id == BankEntryPublisher.entry_id)
        .join(ExchangeRow, (BankEntryPublisher.publisher == publisher) & (ExchangeRow.bank_id == BankEntry.bank_id))
        .where(BankEntryPublisher.entry_id == CaseSignal.entry_id)
        .order_by(ExchangeRow.id)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(name, "")


@dataclass(frozen=True)
class _Kind:
    """One way of grouping signals: the facts of its signal counts and of its cases, its dimensions in the facts
    and as its figure names them (a signal's source is ``signal`` in the facts, where ``source`` is the case's,
    and ``source`` in the figures), their SQL expressions, and which signals it reads (both built afresh for
    each query they go into)."""

    signals: str
    cases: str
    dims: tuple[str, ...]
    shown: tuple[str, ...]
    columns: Callable[[], tuple[ColumnElement, ...]]
    where: Callable[[], ColumnElement]


SIGNALS = _Kind(
    "detections.signals",
    "detections.signal_cases",
    ("signal",),
    ("source",),
    lambda: (CaseSignal.source,),
    lambda: true(),
)
MATCHES = _Kind(
    "detections.matches",
    "detections.match_cases",
    ("bank", "exchange"),
    ("bank", "exchange"),
    lambda: (func.coalesce(CaseSignal.bank, ""), _exchange()),
    lambda: CaseSignal.source == "hash_match",
)
HITS = _Kind(
    "detections.hits",
    "detections.hit_cases",
    ("classifier", "label"),
    ("classifier", "label"),
    lambda: (func.coalesce(CaseSignal.signal_type, ""), func.coalesce(CaseSignal.category, "")),
    lambda: CaseSignal.source == "classifier",
)
KINDS = (SIGNALS, MATCHES, HITS)

#: The detectors a false-positive rate is kept for: (detector kind, the detector's name, the signals it reads).
DETECTORS: dict[str, tuple[Callable[[], ColumnElement], Callable[[], ColumnElement]]] = {
    "bank": (lambda: func.coalesce(CaseSignal.bank, ""), lambda: CaseSignal.source == "hash_match"),
    "exchange": (_exchange, lambda: and_(CaseSignal.source == "hash_match", _exchange() != "")),
    "classifier": (lambda: func.coalesce(CaseSignal.signal_type, ""), lambda: CaseSignal.source == "classifier"),
    "text": (lambda: CaseSignal.source, lambda: CaseSignal.source.in_(TEXT_DETECTORS)),
}
#: Closing decisions that make every detector on the case wrong (``not_violating``).
FALSE_POSITIVE = [d for d, outcome in MATCH_OUTCOMES.items() if outcome == "false_positive"]
REVIEWS = "detections.reviews"
SCANS = "detections.scans"
SEARCH = "detections.search"


def _day(s: Session, at) -> ColumnElement:
    """The UTC day of a timestamp column, in SQL: SQLite keeps UTC wall-clock text (``YYYY-MM-DD HH:MM:SS…``), so
    its first ten characters; PostgreSQL converts its timestamptz to UTC first."""
    if s.bind.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", at))
    return func.substr(at, 1, 10)


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _fact(day, family: str, names: Iterable[str], values: Iterable, value: int, total: float = 0.0) -> Fact:
    dims = tuple(sorted((n, "" if v is None else str(v)) for n, v in zip(names, values, strict=True)))
    return Fact(_as_date(day), family, dims, int(value), float(total))


def _in(at, start: dt.datetime, end: dt.datetime) -> ColumnElement:
    return and_(at >= start, at < end)


class Detections:
    name = NAME
    keys = (
        "detections.daily",
        "detections.by_source",
        "detections.by_bank",
        "detections.by_classifier",
        "scans.volume",
        "search.interventions",
        "errors.false_positives",
    )

    # ------------------------------------------------------------------ rollup

    def first_day(self, s: Session) -> dt.date | None:
        """The first day with a signal or a counter (the engine's first roll-up starts there): scans and searches
        leave no case and no audit record, so the first case would miss the counters of the days before it."""
        signal = s.scalar(select(func.min(CaseSignal.at)))
        counters = [s.scalar(select(func.min(m.day))) for m in (ScanCount, SearchCount)]
        days = [signal.date()] if signal is not None else []
        return min(days + [dt.date.fromisoformat(d) for d in counters if d], default=None)

    def rollup(self, s: Session, start: dt.datetime, end: dt.datetime) -> Iterable[Fact]:
        for kind in KINDS:
            yield from self._signals(s, kind, start, end)
            yield from self._first_cases(s, kind, start, end)
        yield from self._reviews(s, start, end)
        yield from self._counters(s, SCANS, ScanCount, ("media", "verdict"), start, end)
        yield from self._counters(s, SEARCH, SearchCount, ("kind", "action", "category"), start, end)

    @staticmethod
    def _signals(s: Session, kind: _Kind, start: dt.datetime, end: dt.datetime) -> Iterator[Fact]:
        day = _day(s, CaseSignal.at)
        cols = kind.columns()
        q = (
            select(day, Case.source, Case.queue, *cols, func.count())
            .select_from(CaseSignal)
            .join(Case, Case.id == CaseSignal.case_id)
            .where(kind.where(), _in(CaseSignal.at, start, end))
            .group_by(day, Case.source, Case.queue, *cols)
        )
        names = CASE_DIMS + kind.dims
        for d, *values, n in s.execute(q):
            yield _fact(d, kind.signals, names, values, n)

    @staticmethod
    def _first_cases(s: Session, kind: _Kind, start: dt.datetime, end: dt.datetime) -> Iterator[Fact]:
        """Cases on the day of their first signal of each of ``kind``'s rows, for first signals in the window:
        the first is taken over all the case's signals, not only the window's."""
        touched = select(CaseSignal.case_id).where(kind.where(), _in(CaseSignal.at, start, end))
        labels = [c.label(f"d{i}") for i, c in enumerate(kind.columns())]
        firsts = (
            select(CaseSignal.case_id, *labels, func.min(CaseSignal.at).label("first_at"))
            .where(kind.where(), CaseSignal.case_id.in_(touched))
            .group_by(CaseSignal.case_id, *labels)
            .subquery()
        )
        dcols = [firsts.c[f"d{i}"] for i in range(len(labels))]
        day = _day(s, firsts.c.first_at)
        q = (
            select(day, Case.source, Case.queue, *dcols, func.count())
            .select_from(firsts)
            .join(Case, Case.id == firsts.c.case_id)
            .where(_in(firsts.c.first_at, start, end))
            .group_by(day, Case.source, Case.queue, *dcols)
        )
        names = CASE_DIMS + kind.dims
        for d, *values, n in s.execute(q):
            yield _fact(d, kind.cases, names, values, n)

    @staticmethod
    def _reviews(s: Session, start: dt.datetime, end: dt.datetime) -> Iterator[Fact]:
        """Per closing day and detector: the closed cases it contributed a signal to, and those not violating."""
        closed = select(Case.id).where(_closed(start, end)).cte("closed")  # read once, not once per detector kind
        parts = [
            select(
                CaseSignal.case_id.label("case_id"),
                cast(literal(name), String).label("kind"),
                column().label("detector"),
            ).where(where(), CaseSignal.case_id.in_(select(closed.c.id)))
            for name, (column, where) in DETECTORS.items()
        ]
        pairs = union_all(*parts).subquery()
        day = _day(s, Case.closed_at)
        dims = (day, Case.source, Case.queue, pairs.c.kind, pairs.c.detector)
        fp = case((Case.decision.in_(FALSE_POSITIVE), pairs.c.case_id))
        q = (
            select(*dims, func.count(pairs.c.case_id.distinct()), func.count(fp.distinct()))
            .select_from(pairs)
            .join(Case, Case.id == pairs.c.case_id)
            .group_by(*dims)
        )
        names = (*CASE_DIMS, "detector_kind", "detector")
        for d, *values, n, fp in s.execute(q):
            yield _fact(d, REVIEWS, names, values, n, fp or 0)

    @staticmethod
    def _counters(s: Session, family: str, model, fields: tuple[str, ...], start, end) -> Iterator[Fact]:
        """A daily counter table summed per ``fields`` (its other fields, channel, variant and locale, dropped)."""
        cols = [getattr(model, f) for f in fields]
        q = (
            select(model.day, *cols, func.sum(model.count))
            .where(model.day >= start.date().isoformat(), model.day < end.date().isoformat())
            .group_by(model.day, *cols)
        )
        for d, *values, n in s.execute(q):
            yield _fact(d, family, fields, values, n or 0)

    # ------------------------------------------------------------------ figures

    def fill(
        self, read: FactReader, s: Session, period: Period, filters: dict[str, str], as_of: dt.datetime
    ) -> dict[str, Figure]:
        """The facts are summed over the period by the engine's reader (``read.totals``, one row per combination of
        dimensions), then per the figure's columns here, after its filters."""

        def summed(key: str, family: str, dims: tuple[str, ...], by_day: bool = False) -> dict[tuple, list[float]]:
            """``family``'s facts kept by ``key``'s filters, summed per ``dims`` (and day): [value, total]."""
            wanted = {k: v for k, v in filters.items() if k in CATALOGUE[key].filters}
            out: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0])
            for f in read.totals(period.start, period.end, family, by_day=by_day):
                if all(f.dim(k) == v for k, v in wanted.items()):
                    at = (f.day.isoformat(),) if by_day else ()
                    acc = out[at + tuple(f.dim(d) for d in dims)]
                    acc[0] += f.value
                    acc[1] += f.total
            return out

        def figure(key: str, rows: Iterable[tuple]) -> Figure:
            return Figure(CATALOGUE[key], tuple(sorted(rows)))

        def with_cases(key: str, kind: _Kind) -> Figure:
            signals, cases = summed(key, kind.signals, kind.dims), summed(key, kind.cases, kind.dims)
            return figure(key, ((*k, v[0], cases.get(k, [0])[0]) for k, v in signals.items()))

        daily = summed("detections.daily", SIGNALS.signals, SIGNALS.dims, by_day=True)
        reviews = summed("errors.false_positives", REVIEWS, ("detector_kind", "detector"))
        return {
            "detections.daily": figure("detections.daily", ((*k, v[0]) for k, v in daily.items())),
            "detections.by_source": with_cases("detections.by_source", SIGNALS),
            "detections.by_bank": with_cases("detections.by_bank", MATCHES),
            "detections.by_classifier": with_cases("detections.by_classifier", HITS),
            "scans.volume": figure(
                "scans.volume", ((*k, v[0]) for k, v in summed("scans.volume", SCANS, ("media", "verdict")).items())
            ),
            "search.interventions": figure(
                "search.interventions",
                ((*k, v[0]) for k, v in summed("search.interventions", SEARCH, ("kind", "action", "category")).items()),
            ),
            "errors.false_positives": figure(
                "errors.false_positives",
                ((*k, v[0], int(v[1]), _rate(v[1], v[0])) for k, v in reviews.items()),
            ),
        }

    # ------------------------------------------------------------------ drill-down

    def records(
        self, s: Session, key: str, period: Period, filters: dict[str, str], row: dict[str, str]
    ) -> Iterator[dict]:
        if key not in self.keys:
            raise SafeholdError("transparency.unknown_figure", f"No figure {key!r} in the detections.", status=404)
        spec = CATALOGUE[key]
        if spec.records is None:
            raise SafeholdError(
                "transparency.no_records",
                f"Figure {key!r} is summed from counters that keep no record per item: it has no drill-down.",
                status=400,
            )
        start, end = period.start_at, period.end_at
        if row.get("day"):
            start, end = _one_day(row["day"], period)
        cases = [getattr(Case, k) == v for k, v in filters.items() if k in spec.filters and k in CASE_DIMS]
        if key == "errors.false_positives":
            return _stream(s, _reviewed(row, [_closed(start, end), *cases]))
        cond = [_in(CaseSignal.at, start, end), *cases]
        kind = {"detections.by_bank": MATCHES, "detections.by_classifier": HITS}.get(key, SIGNALS)
        cond += [c == row[col] for c, col in zip(kind.columns(), kind.shown, strict=True) if col in row]
        q = (
            select(CaseSignal.case_id, CaseSignal.id.label("signal_id"))
            .join(Case, Case.id == CaseSignal.case_id)
            .where(kind.where(), *cond)
            .order_by(CaseSignal.id)
        )
        return _stream(s, q)


def _closed(start: dt.datetime, end: dt.datetime) -> ColumnElement:
    """Cases closed in the window by a decision that says whether the detection was right."""
    return and_(_in(Case.closed_at, start, end), Case.decision.in_(list(MATCH_OUTCOMES)))


def _reviewed(row: dict[str, str], cond: list) -> Select:
    """The closed cases behind a false-positive row: one record per case, with the detector's first signal on it."""
    kind = row.get("detector_kind", "")
    if kind not in DETECTORS:
        raise SafeholdError(
            "transparency.bad_row",
            f"detector_kind must be one of {', '.join(DETECTORS)}, not {kind[:40]!r}.",
            status=400,
        )
    column, where = DETECTORS[kind]
    extra = [column() == row["detector"]] if "detector" in row else []
    return (
        select(CaseSignal.case_id, func.min(CaseSignal.id).label("signal_id"))
        .join(Case, Case.id == CaseSignal.case_id)
        .where(where(), *cond, *extra)
        .group_by(CaseSignal.case_id)
        .order_by(CaseSignal.case_id)
    )


def _one_day(text: str, period: Period) -> tuple[dt.datetime, dt.datetime]:
    """The window of the drill-down row's ``day``, which must be a day of the period."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None or not period.start <= day < period.end:
        raise SafeholdError(
            "transparency.bad_row", f"day must be a day of the period {period.label()}, not {text[:40]!r}.", status=400
        )
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _stream(s: Session, q: Select) -> Iterator[dict]:
    for case_id, signal_id in s.execute(q.execution_options(yield_per=STREAM_BATCH)):
        yield {"case_id": case_id, "signal_id": signal_id}


def _rate(fp: float, reviewed: float) -> float | None:
    return round(fp / reviewed, 4) if reviewed else None


FAMILY = Detections()
