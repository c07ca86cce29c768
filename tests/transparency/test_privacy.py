"""The small-cell rule: counts 1..k-1 hidden as "<k", zero shown, the rest of a hidden cell's row hidden as "x",
and one more cell hidden beside a lone suppressed one so no column or daily-series total gives it back."""

from __future__ import annotations

import datetime as dt

import pytest

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet, FigureSpec
from safehold.transparency.periods import parse_period
from safehold.transparency.privacy import SECONDARY, is_derived, is_suppressed, suppress

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
        ("claimed", "high", "x"),  # 12: the smallest other non-zero cell, or 3 = total − 40 − 12; not "<10"
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
    assert [r[2] for r in one("cases.backlog", rows)] == ["<10", "x", 20]


def test_rate_hidden_with_small_false_positives_or_reviewed():
    rows = [
        ("bank", "ncmec", 500, 3, 0.006),  # 3 false positives: rate × reviewed would give them back
        ("bank", "own", 7, 0, 0.0),  # 7 reviewed: the rate of so few is hidden too
        ("classifier", "nsfw", 400, 40, 0.1),
        ("classifier", "other", 300, 60, 0.2),
    ]
    assert one("errors.false_positives", rows) == [
        ("bank", "ncmec", "x", "<10", "x"),  # the row of a hidden count is hidden: reviewed 500 and the rate
        ("bank", "own", "<10", 0, "x"),  # zero stays published
        # the lone small false-positive count takes the next smallest (40) with its row; the reviewed column then
        # has three hidden cells
        ("classifier", "nsfw", "x", "x", "x"),
        ("classifier", "other", 300, 60, 0.2),
    ]


def test_percentiles_hidden_when_few_decided():
    rows = [("high", 3600.0, 7200.0, 4), ("low", 86400.0, 172800.0, 0), ("medium", 600.0, 900.0, 25)]
    assert one("decisions.time_to_decision", rows) == [
        ("high", "x", "x", "<10"),
        ("low", 86400.0, 172800.0, 0),
        ("medium", "x", "x", "x"),
    ]


def test_none_stays_none_and_dimensions_untouched():
    spec = FigureSpec("x.y", "X", ("who",), ("n", "mean_seconds"), "", None)
    figures = FigureSet(PERIOD, AS_OF, {"x.y": Figure(spec, (("2", 2, None), ("30", 30, 5.0), ("40", 40, 6.0)))})
    assert list(suppress(figures, 10)["x.y"].rows) == [("2", "<10", None), ("30", "x", "x"), ("40", 40, 6.0)]


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


def test_a_cell_hidden_to_protect_another_claims_nothing_about_its_value():
    rows = [("csam", "A1", 3), ("csam", "A2", 40), ("not_violating", "", 400)]
    out = one("decisions.by_outcome", rows)
    assert out == [("csam", "A1", "<10"), ("csam", "A2", SECONDARY), ("not_violating", "", 400)]
    assert SECONDARY == "x" and is_suppressed("x") and is_suppressed("<10") and not is_suppressed("csam")


def test_a_row_sum_cannot_give_back_a_hidden_count():
    """cases.sla: due = met + breached + open_overdue; a hidden breached count beside published due and met would
    be due − met − open_overdue."""
    rows = [("high", 43, 40, 3, 0), ("normal", 120, 100, 20, 0), ("low", 60, 55, 5, 0)]
    out = one("cases.sla", rows)
    assert out == [("high", "x", "x", "<10", 0), ("normal", 120, 100, 20, 0), ("low", "x", "x", "<10", 0)]
    for _band, due, met, breached, overdue in out:
        if breached == "<10":  # due − met − open_overdue is not computable: two of its terms are hidden
            assert sum(isinstance(v, str) for v in (due, met, overdue)) >= 2


def test_reviewer_exposure_hides_the_reveals_beside_a_hidden_reviewer_days():
    rows = [("under 25%", 120, 900), ("75-99%", 40, 1700), ("at the cap", 2, 100)]
    assert one("reviewers.exposure", rows) == [
        ("under 25%", 120, 900),
        ("75-99%", "x", "x"),  # the column's secondary cell, and its reveals with it
        ("at the cap", "<10", "x"),  # 100 reveals by 2 reviewer-days would say how near the cap they were
    ]


def test_a_hidden_day_cannot_be_recovered_from_the_series_total():
    """detections.daily per source sums to detections.by_source: one hidden day in a series takes a second."""
    daily = (
        ("2026-11-01", "grooming", 3),
        ("2026-11-01", "hash_match", 12),
        ("2026-11-02", "grooming", 50),
        ("2026-11-02", "hash_match", 40),
        ("2026-11-03", "hash_match", 11),
    )
    by_source = (("grooming", 53, 20), ("hash_match", 63, 30))
    figures = FigureSet(
        parse_period("2026-11"),
        AS_OF,
        {
            "detections.daily": Figure(CATALOGUE["detections.daily"], daily),
            "detections.by_source": Figure(CATALOGUE["detections.by_source"], by_source),
        },
    )
    out = suppress(figures, 10)
    assert out["detections.by_source"].rows == by_source  # the series totals stay published
    rows = out["detections.daily"].rows
    for source, total in (("grooming", 53), ("hash_match", 63)):
        series = [r[2] for r in rows if r[1] == source]
        hidden = [v for v in series if is_suppressed(v)]
        rest = total - sum(v for v in series if not is_suppressed(v))
        assert len(hidden) != 1, (source, rest)  # the total minus the published days would be that one day
    grooming = [r[2] for r in rows if r[1] == "grooming"]
    assert grooming == ["<10", SECONDARY]  # 53 − 50 = 3 is no longer possible
    # hash_match 12 went with the hidden grooming day's row; the series then takes its smallest other day, 11
    assert [r[2] for r in rows if r[1] == "hash_match"] == [SECONDARY, 40, SECONDARY]


def test_rows_and_columns_are_hidden_until_no_column_has_a_lone_hidden_cell():
    """cases.daily has one series (the whole figure): a hidden row takes a second row, whose other column then takes
    a third, and no more."""
    rows = [("2026-11-01", 3, 0), ("2026-11-02", 30, 12), ("2026-11-03", 40, 15), ("2026-11-04", 50, 20)]
    out = one("cases.daily", rows)
    assert out == [
        ("2026-11-01", "<10", 0),
        ("2026-11-02", "x", "x"),
        ("2026-11-03", "x", "x"),
        ("2026-11-04", 50, 20),
    ]
