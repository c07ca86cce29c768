"""The catalogue of transparency figures and the figure set every surface and report is built from.

A figure is a small table: dimension columns (``source``, ``bank``, ``band`` …) and value columns (counts, seconds,
rates). :data:`CATALOGUE` defines each one once — what it counts, over which records, which filters it honours and
how it is charted — and :data:`VERSION` names that set of definitions: a stored report keeps the version it was
computed with, and a change to any definition's meaning must bump it.

The engine (:mod:`safehold.transparency.engine`) fills a :class:`FigureSet` for a period; the overview, the API and
every report format read only that, so one period gives one set of numbers everywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from safehold.transparency.periods import Period

#: The version of the figure definitions below. Bump it when a definition's meaning changes.
VERSION = "1"

#: Filters the overview and the API accept (each figure lists the ones it honours).
FILTERS = ("source", "queue")


@dataclass(frozen=True)
class FigureSpec:
    """One figure's definition.

    ``dims`` and ``values`` are the column names (dimension columns first). ``counts`` says what one unit of the
    first value column is and over which records it is counted — the text the overview and the reports print
    under the figure. ``records`` names the table(s) a drill-down lists (None: an aggregate the system keeps no
    per-item record of, such as a scan that matched nothing). ``chart`` is ``line`` (``dims[0]`` is a day),
    ``bar`` or ``table``.
    """

    key: str
    title: str
    dims: tuple[str, ...]
    values: tuple[str, ...]
    counts: str
    records: str | None
    chart: str = "bar"
    filters: tuple[str, ...] = ()
    unit: str = "count"  # count | seconds | ratio (of the first value column; others are counts unless named)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.dims + self.values


def _spec(*args, **kwargs) -> tuple[str, FigureSpec]:
    s = FigureSpec(*args, **kwargs)
    return s.key, s


CATALOGUE: dict[str, FigureSpec] = dict(
    [
        # ------------------------------------------------------------------ what came in and what was found
        _spec(
            "scans.volume",
            "Media scanned",
            ("media", "verdict"),
            ("scans",),
            "Images, videos and hashes checked against the banks in the period, by verdict (from the aggregate "
            "scan counters: a scan that matched nothing leaves no other record).",
            None,
        ),
        _spec(
            "detections.daily",
            "Detections per day",
            ("day", "source"),
            ("signals",),
            "Detector signals recorded on cases each day, by detector family.",
            "case_signals",
            chart="line",
            filters=("source", "queue"),
        ),
        _spec(
            "detections.by_source",
            "Detections by source",
            ("source",),
            ("signals", "cases"),
            "Detector signals recorded on cases in the period (hash match, classifier, grooming, solicitation, "
            "platform event, user report, livestream), and the distinct cases they went to.",
            "case_signals",
            filters=("source", "queue"),
        ),
        _spec(
            "detections.by_bank",
            "Hash matches by bank and exchange",
            ("bank", "exchange"),
            ("matches", "cases"),
            "Hash-match signals in the period per bank, and the exchange that supplied the matched entry "
            "('' for the platform's own entries).",
            "case_signals",
            filters=("queue",),
        ),
        _spec(
            "detections.by_classifier",
            "Classifier hits by classifier and label",
            ("classifier", "label"),
            ("hits", "cases"),
            "Classifier signals (local models and external services) in the period, per classifier and label.",
            "case_signals",
            filters=("queue",),
        ),
        _spec(
            "search.interventions",
            "Search and autocomplete interventions",
            ("kind", "action", "category"),
            ("count",),
            "Search-guard outcomes from the aggregate counters: checked queries by action, suggestions removed from "
            "autocomplete, help-resource clicks (no query and no user is ever recorded).",
            None,
        ),
        # ------------------------------------------------------------------ cases and their review
        _spec(
            "cases.daily",
            "Cases opened and closed per day",
            ("day",),
            ("opened", "closed"),
            "Cases opened and cases closed each day.",
            "cases",
            chart="line",
            filters=("source", "queue"),
        ),
        _spec(
            "cases.by_source",
            "Cases by source and queue",
            ("source", "queue"),
            ("opened", "closed"),
            "Cases opened in the period by what opened them and the queue they went to, and those closed in it.",
            "cases",
            filters=("source", "queue"),
        ),
        _spec(
            "cases.backlog",
            "Backlog at the end of the period",
            ("status", "band"),
            ("cases",),
            "Cases not closed at the end of the period (or now, for a period that has not ended), by status and "
            "priority band.",
            "cases",
            filters=("source", "queue"),
        ),
        _spec(
            "cases.sla",
            "Service-level agreement by band",
            ("band",),
            ("due", "met", "breached", "open_overdue"),
            "Cases whose decision was due in the period: decided in time, decided late, or still undecided past "
            "their due time.",
            "cases",
            filters=("source", "queue"),
        ),
        _spec(
            "decisions.time_to_decision",
            "Time to decision",
            ("band",),
            ("p50_seconds", "p90_seconds", "decided"),
            "Seconds from a case's opening to its first decision, for cases first decided in the period: median "
            "and 90th percentile per priority band (from a histogram with buckets about 19 % wide).",
            "case_decisions",
            filters=("source", "queue"),
            unit="seconds",
        ),
        _spec(
            "decisions.by_outcome",
            "Decisions by outcome and category",
            ("decision", "classification"),
            ("cases",),
            "Cases closed in the period by their closing decision; for CSAM the industry category (A1 prepubescent "
            "sex act … B2 pubescent lascivious exhibition), for other exploitation its kind.",
            "case_decisions",
            filters=("source", "queue"),
        ),
        _spec(
            "decisions.second_review",
            "Second reviews",
            ("outcome",),
            ("decisions",),
            "Second reviews in the period (a decision on unknown material confirmed by another reviewer, or "
            "overturned): how often the first reviewer's decision stood.",
            "case_decisions",
            filters=("source", "queue"),
        ),
        _spec(
            "actions.by_kind",
            "Actions taken",
            ("kind", "origin"),
            ("actions",),
            "Actions taken on the platform's content and accounts in the period, by kind and origin: automatic (a "
            "policy on a detection, no person involved), after a decision (a policy a reviewer's decision "
            "triggered) or manual (taken by a person).",
            "case_actions",
            filters=("source", "queue"),
        ),
        _spec(
            "reports.by_authority",
            "Reports to authorities",
            ("authority", "status"),
            ("reports", "cases"),
            "Reports to authorities (NCMEC's CyberTipline and others) created in the period, by their status at the "
            "end of it, and the cases they bundle.",
            "reports",
        ),
        _spec(
            "user_reports.by_category",
            "Reports from users and trusted flaggers",
            ("category", "outcome"),
            ("reports", "urgent"),
            "Reports received from the platform's users and trusted flaggers in the period (Principle 8), by what "
            "they reported and their outcome at the end of the period (received: not decided yet; actioned; "
            "no_action), and how many of them were a child's own urgent report.",
            "user_reports",
        ),
        _spec(
            "appeals.by_outcome",
            "Appeals against decisions",
            ("outcome",),
            ("appeals",),
            "Appeals received in the period against decided cases, by their outcome at the end of the period "
            "(received: not reviewed yet; upheld; overturned by a second reviewer).",
            "appeals",
        ),
        _spec(
            "errors.false_positives",
            "False positives found by reviewers",
            ("detector_kind", "detector"),
            ("reviewed", "false_positives", "rate"),
            "Cases closed in the period that a detector contributed to, and how many of them reviewers found not "
            "violating, per bank, exchange, classifier and text detector. A case found violating counts as a true "
            "positive for every detector that contributed to it.",
            "case_signals",
            filters=("source", "queue"),
            unit="ratio",
        ),
        # ------------------------------------------------------------------ the people and the partners
        _spec(
            "reviewers.exposure",
            "Reviewer exposure against the wellness cap",
            ("share_of_cap",),
            ("reviewer_days", "reveals"),
            "Reviewer-days in the period by the share of the reviewer's daily reveal cap they used (under 25 %, "
            "25–50 %, 50–75 %, 75–99 %, at the cap), and the media reveals they made; no reviewer is named.",
            None,  # no drill-down: a case's reveal history would name the reviewer
        ),
        _spec(
            "exchanges.activity",
            "Hash exchanges",
            ("exchange", "direction"),
            ("items",),
            "Per exchange in the period: hash entries received, hashes shared with it, and feedback (confirmed / "
            "disputed) sent to it.",
            "bank_entries, exchange_contributions, exchange_feedback",
        ),
    ]
)


@dataclass(frozen=True)
class Figure:
    """One figure's rows for a period: tuples in the order of ``spec.columns``."""

    spec: FigureSpec
    rows: tuple[tuple, ...]
    #: Set when the figure could not be computed in full (e.g. a source the system does not have yet).
    note: str = ""

    def dicts(self) -> list[dict]:
        return [dict(zip(self.spec.columns, r, strict=True)) for r in self.rows]

    def total(self, value: str | None = None) -> float:
        """The sum of one value column (the first by default) over every row."""
        i = self.spec.columns.index(value or self.spec.values[0])
        return sum(r[i] or 0 for r in self.rows)


@dataclass(frozen=True)
class FigureSet:
    """Every figure of :data:`CATALOGUE` for one period, as the records stood at ``as_of``."""

    period: Period
    as_of: dt.datetime
    figures: dict[str, Figure]
    filters: dict[str, str] = field(default_factory=dict)
    version: str = VERSION

    def __getitem__(self, key: str) -> Figure:
        return self.figures[key]

    def record(self) -> dict:
        """The figure set as JSON values: what a stored report keeps and ``GET /v1/transparency/overview``
        answers."""
        return {
            "version": self.version,
            "period": self.period.record(),
            "as_of": self.as_of.isoformat(),
            "filters": dict(sorted(self.filters.items())),
            "figures": {
                k: {"columns": list(f.spec.columns), "rows": [list(r) for r in f.rows], "note": f.note}
                for k, f in sorted(self.figures.items())
            },
        }

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`record`: two figure sets with the same digest are the same
        numbers."""
        text = json.dumps(self.record(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_record(cls, record: dict) -> FigureSet:
        """The figure set :meth:`record` wrote (a stored report's), against the current catalogue: a key the
        catalogue no longer has is kept with a spec rebuilt from its columns."""
        p = record["period"]
        period = Period(p["name"], dt.date.fromisoformat(p["start"]), dt.date.fromisoformat(p["end"]))
        figures = {}
        for key, f in record["figures"].items():
            spec = CATALOGUE.get(key)
            if spec is None or list(spec.columns) != f["columns"]:
                cols = tuple(f["columns"])
                spec = FigureSpec(key, key, cols[:-1], cols[-1:], "", None, chart="table")
            figures[key] = Figure(spec, tuple(tuple(r) for r in f["rows"]), f.get("note", ""))
        return cls(
            period,
            dt.datetime.fromisoformat(record["as_of"]),
            figures,
            dict(record.get("filters") or {}),
            record.get("version", VERSION),
        )
