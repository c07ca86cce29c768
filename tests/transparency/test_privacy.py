"""The small-cell rule: counts 1..k-1 hidden, zero shown, derived values hidden with their counts, and one more cell
hidden beside a lone suppressed one so no column total gives it back."""

from __future__ import annotations

import datetime as dt

import pytest

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet, FigureSpec
from safehold.transparency.periods import parse_period
from safehold.transparency.privacy import is_derived, suppress

PERIOD = parse_period("2026-H1")
AS_OF = dt.datetime(2026, 7, 2, tzinfo=dt.UTC)


def one(key: str, rows, k: int = 10) -> list[tuple]:
    """The rows of figure ``key`` (of the catalogue) once suppressed with threshold ``k``."""
    figures = FigureSet(PERIOD, AS_OF, {key: Figure(CATALOGUE[key], tuple(rows))})
    return list(suppress(figures, k)[key].rows)


def test_small_counts_hidden_zero_and_large_shown():
    rows = [("hash", 0, 0), ("classifier", 9, 3), ("solicitation", 1, 1), ("grooming", 10, 10), ("report", 250, 240)]
    assert one("detections.by_source", rows) == [
        ("hash", 0, 0),
        ("classifier", "<10", "<10"),
        ("solicitation", "<10", "<10"),  # two hidden per column: no secondary suppression needed
        ("grooming", 10, 10),
        ("report", 250, 240),
    ]


def test_the_boundary_moves_with_k():
    rows = [("a", 1, 0), ("b", 4, 0), ("c", 5, 0), ("d", 6, 0)]
    assert one("detections.by_source", rows, k=5) == [("a", "<5", 0), ("b", "<5", 0), ("c", 5, 0), ("d", 6, 0)]


@pytest.mark.parametrize("k", [0, 1])
def test_k_of_one_or_less_changes_nothing(k):
    figures = FigureSet(PERIOD, AS_OF, {"cases.backlog": Figure(CATALOGUE["cases.backlog"], (("open", "high", 1),))})
    assert suppress(figures, k) is figures


def test_lone_suppressed_cell_takes_the_next_smallest():
    rows = [("open", "high", 3), ("open", "low", 40), ("claimed", "high", 12), ("claimed", "low", 0)]
    assert one("cases.backlog", rows) == [
        ("open", "high", "<10"),
        ("open", "low", 40),
        ("claimed", "high", "<10"),  # 12: the smallest other non-zero cell, or 3 = total − 40 − 12
        ("claimed", "low", 0),
    ]


def test_no_secondary_when_two_are_already_hidden_or_the_rest_is_zero():
    assert one("cases.backlog", [("open", "high", 3), ("open", "low", 4), ("claimed", "low", 50)]) == [
        ("open", "high", "<10"),
        ("open", "low", "<10"),
        ("claimed", "low", 50),
    ]
    assert one("cases.backlog", [("open", "high", 3), ("open", "low", 0)]) == [
        ("open", "high", "<10"),
        ("open", "low", 0),
    ]


def test_secondary_tie_takes_the_first_row():
    rows = [("open", "high", 2), ("open", "low", 20), ("claimed", "low", 20)]
    assert [r[2] for r in one("cases.backlog", rows)] == ["<10", "<10", 20]


def test_rate_hidden_with_small_false_positives_or_reviewed():
    rows = [
        ("bank", "ncmec", 500, 3, 0.006),  # 3 false positives: rate × reviewed would give them back
        ("bank", "own", 7, 0, 0.0),  # 7 reviewed: the rate of so few is hidden too
        ("classifier", "nsfw", 400, 40, 0.1),
        ("classifier", "other", 300, 60, 0.2),
    ]
    assert one("errors.false_positives", rows) == [
        ("bank", "ncmec", 500, "<10", "<10"),
        ("bank", "own", "<10", 0, "<10"),
        # the lone small false-positive count takes the next smallest (40) and its rate with it;
        # the lone small reviewed count takes the next smallest reviewed (300) and its rate
        ("classifier", "nsfw", 400, "<10", "<10"),
        ("classifier", "other", "<10", 60, "<10"),
    ]


def test_percentiles_hidden_when_few_decided():
    rows = [("high", 3600.0, 7200.0, 4), ("low", 86400.0, 172800.0, 0), ("medium", 600.0, 900.0, 25)]
    assert one("decisions.time_to_decision", rows) == [
        ("high", "<10", "<10", "<10"),
        ("low", 86400.0, 172800.0, 0),
        ("medium", "<10", "<10", "<10"),
    ]


def test_none_stays_none_and_dimensions_untouched():
    spec = FigureSpec("x.y", "X", ("who",), ("n", "mean_seconds"), "", None)
    figures = FigureSet(PERIOD, AS_OF, {"x.y": Figure(spec, (("2", 2, None), ("30", 30, 5.0), ("40", 40, 6.0)))})
    assert list(suppress(figures, 10)["x.y"].rows) == [("2", "<10", None), ("30", "<10", "<10"), ("40", 40, 6.0)]


def test_every_derived_column_of_the_catalogue_has_a_count_beside_it():
    for spec in CATALOGUE.values():
        counts = [v for v in spec.values if not is_derived(v)]
        assert counts, spec.key  # a derived value alone could not be suppressed by its count
        if spec.unit != "count":
            assert any(is_derived(v) for v in spec.values), spec.key


def test_the_input_is_not_changed_and_the_rest_is_kept():
    figures = FigureSet(PERIOD, AS_OF, {"cases.backlog": Figure(CATALOGUE["cases.backlog"], (("open", "high", 1),))})
    out = suppress(figures, 10)
    assert figures["cases.backlog"].rows == (("open", "high", 1),)
    assert out["cases.backlog"].rows == (("open", "high", "<10"),)
    assert (out.period, out.as_of, out.version) == (figures.period, figures.as_of, figures.version)
