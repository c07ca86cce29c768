"""A hand-built figure set with a realistic row or several for every figure of the catalogue, and some cells
suppressed by the small-cell rule (``"<10"``), for the report-format tests. Synthetic numbers: no store."""

from __future__ import annotations

import datetime as dt

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet
from safehold.transparency.formats import ReportContext
from safehold.transparency.periods import parse_period

MIN_CELL = 10
SMALL = f"<{MIN_CELL}"
PERIOD = parse_period("2026-Q1")
AS_OF = dt.datetime(2026, 4, 2, 6, 30, tzinfo=dt.UTC)
CONTEXT = ReportContext("Example Platforms Ltd", "Example Social", dt.datetime(2026, 4, 3, 9, 0, tzinfo=dt.UTC), 10)


def _daily(sources: dict[str, int]) -> tuple[tuple, ...]:
    """One row per day and source, with a weekly rhythm; the smallest source's quiet days are suppressed."""
    rows = []
    for i, day in enumerate(PERIOD.each_day()):
        for j, (source, base) in enumerate(sources.items()):
            n = base + (i * (j + 3)) % 17 - (8 if day.weekday() >= 5 else 0)
            rows.append((day.isoformat(), source, n if n >= MIN_CELL else SMALL))
    return tuple(rows)


ROWS: dict[str, tuple[tuple, ...]] = {
    "scans.volume": (
        ("image", "no_match", 1_482_113),
        ("image", "match", 2_311),
        ("video", "no_match", 40_877),
        ("video", "match", 57),
        ("hash", "no_match", 9_120),
        ("hash", "match", SMALL),
    ),
    "detections.daily": _daily({"hash_match": 24, "classifier": 15, "user_report": 11, "grooming": 6}),
    "detections.by_source": (
        ("hash_match", 2_368, 2_102),
        ("classifier", 1_511, 1_340),
        ("user_report", 1_003, 955),
        ("grooming", 412, 198),
        ("solicitation", 131, 120),
        ("livestream", SMALL, SMALL),
    ),
    "detections.by_bank": (
        ("ncmec", "ncmec", 1_402, 1_250),
        ("iwf", "", 655, 601),
        ("own", "", 301, 280),
        ("peer-list", "peer:example-org", SMALL, SMALL),
    ),
    "detections.by_classifier": (
        ("nudity-local", "nudity_minor", 1_120, 1_010),
        ("nudity-local", "nudity_adult", 310, 290),
        ("vendor-x", "csam_likely", 81, 40),
    ),
    "search.interventions": (
        ("query", "allowed", "", 9_855_200),
        ("query", "deterred", "csam_terms", 3_412),
        ("query", "blocked", "csam_terms", 1_204),
        ("suggestion", "removed", "csam_terms", 688),
        ("help", "clicked", "", SMALL),
    ),
    "cases.daily": tuple((d.isoformat(), 40 + i % 9, 38 + (i * 5) % 11) for i, d in enumerate(PERIOD.each_day())),
    "cases.by_source": (
        ("hash_match", "known-csam", 2_102, 2_090),
        ("classifier", "new-material", 1_340, 1_301),
        ("user_report", "reports", 955, 940),
        ("grooming", "grooming", 198, 190),
    ),
    "cases.backlog": (("open", "urgent", SMALL), ("open", "high", 31), ("claimed", "normal", 54)),
    "cases.sla": (("urgent", 420, 411, SMALL, 0), ("high", 1_900, 1_820, 71, 12), ("normal", 2_200, 2_010, 180, 15)),
    "decisions.time_to_decision": (
        ("urgent", 1_260.0, 3_420.0, 420),
        ("high", 7_800.0, 30_600.0, 1_891),
        ("normal", 41_000.0, 172_800.0, 2_190),
    ),
    "decisions.by_outcome": (
        ("violating", "A1", 312),
        ("violating", "A2", 188),
        ("violating", "B1", 940),
        ("violating", "B2", 411),
        ("not_violating", "", 1_730),
        ("violating", "grooming", 96),
        ("escalated", "", SMALL),
    ),
    "decisions.second_review": (("confirmed", 1_204), ("overturned", 37)),
    "actions.by_kind": (
        ("remove_content", "automatic", 2_050),
        ("remove_content", "decision", 1_470),
        ("suspend_account", "decision", 610),
        ("restrict_contact", "manual", SMALL),
    ),
    "reports.by_authority": (
        ("ncmec", "acknowledged", 1_840, 2_020),
        ("ncmec", "submitted", 44, 47),
        ("nca", "acknowledged", 120, 126),
        ("nca", "failed", SMALL, SMALL),
    ),
    "errors.false_positives": (
        ("bank", "ncmec", 1_250, 12, 0.0096),
        ("bank", "iwf", 601, SMALL, SMALL),
        ("classifier", "nudity-local", 1_300, 402, 0.3092),
        ("text", "grooming", 190, 77, 0.4053),
    ),
    "reviewers.exposure": (
        ("under 25 %", 310, 4_100),
        ("25–50 %", 122, 5_320),
        ("50–75 %", 40, 3_900),
        ("75–99 %", 12, 1_630),
        ("at the cap", SMALL, SMALL),
    ),
    "exchanges.activity": (
        ("ncmec", "received", 120_455),
        ("peer:example-org", "received", 3_110),
        ("peer:example-org", "shared", 402),
        ("peer:example-org", "feedback", 55),
    ),
}

assert set(ROWS) == set(CATALOGUE), "every catalogue figure has sample rows"


def figure_set(**overrides: tuple[tuple, ...]) -> FigureSet:
    """Every catalogue figure with :data:`ROWS` (or the rows given for a key)."""
    rows = ROWS | overrides
    figures = {k: Figure(spec, rows[k]) for k, spec in CATALOGUE.items()}
    return FigureSet(PERIOD, AS_OF, figures)
