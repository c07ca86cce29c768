"""Hand-built figure sets for the report-format tests (every catalogue figure, with rows as a small platform's
half-year might give), and an independent check that a report's filled entries are what their figure rows say."""

from __future__ import annotations

import datetime as dt
import json

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet
from safehold.transparency.formats import ReportContext
from safehold.transparency.periods import Period

PERIOD = Period("2026-H1", dt.date(2026, 1, 1), dt.date(2026, 7, 1))
AS_OF = dt.datetime(2026, 7, 2, 3, 0, tzinfo=dt.UTC)
CONTEXT = ReportContext("Example Ltd", "Example Chat", dt.datetime(2026, 7, 2, 4, 0, tzinfo=dt.UTC), 10, 7)

ROWS: dict[str, list[tuple]] = {
    "scans.volume": [
        ("image", "match", 120),
        ("image", "no_match", 98000),
        ("video", "match", 12),
        ("video", "no_match", 4500),
        ("hash", "no_match", 300),
        ("url", "no_match", 40),
    ],
    "detections.daily": [("2026-01-01", "hash_match", 3), ("2026-01-02", "classifier", 2)],
    "detections.by_source": [
        ("hash_match", 140, 130),
        ("rematch", 8, 8),
        ("classifier", 60, 55),
        ("grooming", 25, 20),
        ("solicitation", 15, 12),
        ("user_report", 40, 38),
        ("livestream", 5, 5),
        ("event", 10, 10),
    ],
    "detections.by_bank": [
        ("ncmec-hashes", "ncmec", 90, 85),
        ("own", "", 20, 20),
        ("stopncii-bank", "stopncii", 8, 8),
    ],
    "detections.by_classifier": [("nsfw-onnx", "csam_likely", 40, 38), ("vendor-api", "csam", 20, 19)],
    "search.interventions": [
        ("query", "block", "csam", 300),
        ("query", "warn", "grooming", 120),
        ("suggestion", "removed", "csam", 80),
        ("help_click", "", "", 15),
    ],
    "cases.daily": [("2026-01-01", 4, 3), ("2026-01-02", 5, 6)],
    "cases.by_source": [
        ("hash_match", "media", 130, 120),
        ("classifier", "media", 55, 50),
        ("grooming", "text", 20, 18),
        ("solicitation", "text", 12, 12),
        ("user_report", "report", 38, 30),
    ],
    "cases.backlog": [("open", "P2", 14), ("escalated", "P1", 3)],
    "cases.sla": [("P1", 40, 38, 2, 0), ("P2", 120, 110, 8, 2)],
    "decisions.time_to_decision": [("P1", 1800, 7200, 100), ("P2", 14400, 72000, 130)],
    "decisions.by_outcome": [
        ("csam", "A1", 20),
        ("csam", "A2", 30),
        ("csam", "B1", 15),
        ("csam", "B2", 25),
        ("cse", "grooming", 14),
        ("cse", "solicitation", 9),
        ("cse", "sextortion", 6),
        ("cse", "other", 3),
        ("not_violating", "", 95),
    ],
    "decisions.second_review": [("confirmed", 48), ("overturned", 4)],
    "actions.by_kind": [
        ("remove_content", "automatic", 100),
        ("remove_content", "decision", 60),
        ("block_content", "decision", 20),
        ("suspend_account", "decision", 40),
        ("restrict_account", "manual", 5),
        ("preserve_evidence", "automatic", 120),
        ("notify", "decision", 30),
    ],
    "reports.by_authority": [("ncmec", "filed", 80, 85), ("ncmec", "draft", 6, 6), ("nca", "filed", 12, 12)],
    "user_reports.by_category": [("grooming", "actioned", 40, 3), ("other", "no_action", 25, 0)],
    "appeals.by_outcome": [("upheld", 12), ("overturned", 3)],
    "errors.false_positives": [
        ("bank", "ncmec-hashes", 85, 1, 0.0118),
        ("bank", "own", 20, 0, 0.0),
        ("exchange", "stopncii", 8, 2, 0.25),
        ("classifier", "nsfw-onnx", 38, 9, 0.2368),
        ("classifier", "vendor-api", 19, 3, 0.1579),
        ("grooming", "grooming-scorer", 20, 5, 0.25),
        ("solicitation", "solicitation-scorer", 12, 2, 0.1667),
        ("livestream", "frame-sampler", 5, 1, 0.2),
    ],
    "reviewers.exposure": [("under 25 %", 40, 200), ("25–50 %", 20, 300), ("at the cap", 3, 150)],
    "exchanges.activity": [
        ("ncmec", "received", 5000),
        ("ncmec", "feedback_confirmed", 70),
        ("stopncii", "received", 800),
        ("peer-x", "shared", 40),
        ("peer-x", "received", 30),
    ],
}


def figure_set(rows: dict[str, list[tuple]] | None = None) -> FigureSet:
    """Every catalogue figure with ``rows`` (default :data:`ROWS`; a key left out has no rows)."""
    rows = ROWS if rows is None else rows
    return FigureSet(PERIOD, AS_OF, {k: Figure(spec, tuple(rows.get(k, ()))) for k, spec in CATALOGUE.items()})


def suppressed(rows: dict[str, list[tuple]], changes: dict[tuple[str, int, int], str]) -> dict[str, list[tuple]]:
    """``rows`` with cell (key, row index, column index) replaced by a suppressed value."""
    out = {k: [list(r) for r in v] for k, v in rows.items()}
    for (key, i, j), value in changes.items():
        out[key][i][j] = value
    return {k: [tuple(r) for r in v] for k, v in out.items()}


def document(fmt, figures: FigureSet) -> dict:
    return json.loads(fmt.render(figures, CONTEXT))


def picked(figures: FigureSet, source: dict) -> list[dict]:
    """The rows of a figure a source record names, found without the format's own code."""
    out = []
    for r in figures[source["figure"]].dicts():
        if all(str(r[d]) in v for d, v in source.get("where", {}).items()) and not any(
            str(r[d]) in v for d, v in source.get("except", {}).items()
        ):
            out.append(r)
    return out


def check_traceable(figures: FigureSet, entries: list[dict]) -> int:
    """Assert every filled entry's value is what its source rows give (over exact figures); returns how many
    entries were checked."""
    checked = 0
    for e in entries:
        if e["status"] != "filled":
            continue
        sums = [sum(r[s["column"]] for r in picked(figures, s)) for s in e["sources"]]
        if e["derivation"] == "sum":
            assert e["value"] == sums[0], e["id"]
        elif e["derivation"] == "ratio":
            expected = None if not sums[1] else sums[0] / sums[1]
            if expected is not None:
                expected = round(expected * 100, 2) if e["unit"] == "percent" else round(expected, 4)
            assert e["value"] == expected, e["id"]
        elif e["derivation"] == "names":
            names = {str(v) for s in e["sources"] for r in picked(figures, s) for v in r.values()}
            assert set(e["value"]) <= names, e["id"]
        elif e["derivation"] == "yes_no":
            assert e["value"] in ("yes", "no"), e["id"]
        else:
            assert e["derivation"] == "context", e["id"]
        checked += 1
    return checked


def assert_deterministic(fmt) -> None:
    """The same figures give the same bytes, and so does the figure set rebuilt from its stored record (how a
    published report is reproduced)."""
    figures = figure_set()
    first = fmt.render(figures, CONTEXT)
    assert fmt.render(figures, CONTEXT) == first
    assert fmt.render(FigureSet.from_record(json.loads(json.dumps(figures.record()))), CONTEXT) == first
