"""Sums over suppressed small cells: never a false exact number, never more precise than the cells."""

from __future__ import annotations

from safehold.transparency.formats._tally import Tally, combine, pick, ratio
from tests.transparency.format_helpers import ROWS, figure_set, suppressed


def test_exact_cells_sum_to_a_number():
    assert combine([3, 4, 0], 10) == 7
    assert combine([], 10) == 0


def test_a_sum_that_could_be_small_stays_suppressed():
    assert combine(["<10"], 10) == "<10"
    assert combine(["<10", 0], 10) == "<10"


def test_otherwise_the_range_the_sum_lies_in():
    assert combine(["<10", "<10"], 10) == "2..18"
    assert combine([50, "<10"], 10) == "51..59"
    # the cell's own threshold is read from it
    assert combine([15, "<5"], 10) == "16..19"


def test_a_sum_with_a_secondary_cell_is_unknown_never_a_range():
    """ "x" hides a cell kept back only to protect a small one: it may be 40, so no range may be claimed."""
    assert combine(["<10", "x"], 10) == "x"  # a true 43 (3 + 40) is not "2..18"
    assert combine([400, "x"], 10) == "x" and combine(["x"], 10) == "x"
    assert ratio("x", 40) is None and ratio(3, "x") is None


def test_the_repro_true_total_of_43_is_not_printed_as_a_range_below_10():
    from safehold.transparency.privacy import suppress

    fs = figure_set({"decisions.by_outcome": [("csam", "A1", 3), ("csam", "A2", 40), ("not_violating", "", 400)]})
    t = Tally(suppress(fs, 10), 10)
    assert t.sum(pick("decisions.by_outcome", "cases", {"decision": ["csam"]})) == "x"


def test_ratio_only_from_exact_counts():
    assert ratio(1, 4) == 0.25
    assert ratio("<10", 40) is None and ratio(3, "12..20") is None and ratio(3, 0) is None


def test_picks_and_breakdowns_follow_the_rows():
    t = Tally(figure_set(suppressed(ROWS, {("reports.by_authority", 2, 2): "<10"})), 10)
    ncmec = pick("reports.by_authority", "reports", {"authority": ["ncmec"]})
    assert t.sum(ncmec) == 86
    assert t.breakdown(pick("reports.by_authority", "reports"), "authority") == [
        {"authority": "nca", "value": "<10"},
        {"authority": "ncmec", "value": 86},
    ]
    assert t.sum(pick("reports.by_authority", "reports", exclude={"authority": ["ncmec"]})) == "<10"
    assert t.sum(pick("no.such_figure", "x")) == 0
