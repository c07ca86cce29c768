"""The overview's pure parts: sections and headlines from a figure set, the period and filter check, the row a
drill-down names and the picker's suggested periods."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from safehold.errors import SafeholdError
from safehold.transparency import overview
from safehold.transparency.figures import CATALOGUE, Figure, FigureSpec
from safehold.transparency.periods import parse_period
from tests.transparency.overview_helpers import sample


class FakeFacts:
    def __init__(self, figures):
        self.fs = figures

    def figures(self, period, filters=None, as_of=None):
        return self.fs


def test_every_figure_in_a_section_and_one_added_later_under_other():
    period = parse_period("2026-H1")
    fs = sample(period)
    extra = FigureSpec("new.thing", "A new thing", ("kind",), ("count",), "Things.", None)
    fs = dataclasses.replace(fs, figures={**fs.figures, "new.thing": Figure(extra, (("a", 1),))})
    ov = overview.build(FakeFacts(fs), period, {})
    placed = [f.spec.key for s in ov.sections for f in s.figures]
    assert sorted(placed) == sorted([*CATALOGUE, "new.thing"]) and len(placed) == len(set(placed))
    assert ov.sections[-1].group.heading == "Other figures" and ov.sections[-1].figures[0].spec.key == "new.thing"
    assert not ov.empty


def test_headlines_and_the_median_of_one_band_or_all_bands():
    period = parse_period("2026-H1")
    heads = {h.key: h for h in overview.build(FakeFacts(sample(period)), period, {}).headlines}
    assert [h.key for h in heads.values()] == ["detections", "cases_opened", "cases_closed", "backlog",
                                               "sla_breaches", "median_time_to_decision", "reports_filed"]  # fmt: skip
    assert heads["backlog"].label == "Backlog at the end"  # the period ended before the figures' as_of
    assert heads["median_time_to_decision"].value is None
    spec = CATALOGUE["decisions.time_to_decision"]
    for rows in ([("P1", 1800, 7200, 100), ("", 3600, 9000, 230)], [("P2", 5400, 9000, 3), ("P3", 60, 60, 0)]):
        fs = sample(period)
        fs = dataclasses.replace(fs, figures={**fs.figures, spec.key: Figure(spec, tuple(rows))})
        median = {h.key: h for h in overview.build(FakeFacts(fs), period, {}).headlines}["median_time_to_decision"]
        assert (median.value, median.text) == ((3600.0, "1.0 h") if rows[1][0] == "" else (5400.0, "1.5 h"))


def test_parse_checks_period_filters_and_values():
    period, filters = overview.parse("2026-Q3", {"source": "classifier", "queue": ""})
    assert period.name == "2026-Q3" and filters == {"source": "classifier"}
    for bad_period, bad_filters, code in (
        ("2026-Q5", {}, "transparency.bad_period"),
        ("", {"colour": "red"}, "transparency.bad_filter"),
        ("", {"queue": "kitchen"}, "transparency.bad_filter"),
    ):
        with pytest.raises(SafeholdError) as e:
            overview.parse(bad_period, bad_filters)
        assert e.value.code == code and e.value.status == 400


def test_parse_row():
    spec = CATALOGUE["cases.by_source"]
    assert overview.parse_row(spec, [("period", "2026"), ("source", "grooming"), ("queue", "text")]) == {
        "source": "grooming",
        "queue": "text",
    }
    by_bank = CATALOGUE["detections.by_bank"]
    # queue is a filter of this figure, not one of its dimensions: it is not part of the row
    assert overview.parse_row(by_bank, [("queue", "media"), ("bank", "own"), ("exchange", "")]) == {
        "bank": "own",
        "exchange": "",
    }
    assert overview.parse_row(by_bank, [("bank", "own")]) == {"bank": "own"}  # any exchange
    for params in ([("bank", "own"), ("exchange", ""), ("bank", "x")], [("day", "1")], [("bank", "b" * 201)]):
        with pytest.raises(SafeholdError) as e:
            overview.parse_row(by_bank, params)
        assert e.value.code == "transparency.bad_row"


def test_drill_down_spec():
    assert overview.drill_down_spec("cases.daily").records == "cases"
    with pytest.raises(SafeholdError) as e:
        overview.drill_down_spec("scans.volume")
    assert e.value.code == "transparency.no_records"
    with pytest.raises(SafeholdError) as e:
        overview.drill_down_spec("no.such")
    assert e.value.status == 404


def test_suggested_periods_all_parse():
    for today in (dt.date(2026, 1, 15), dt.date(2026, 7, 1), dt.date(2026, 12, 31)):
        names = overview.suggested_periods(today)
        assert all(parse_period(n, today=today) for n in names)
    assert overview.suggested_periods(dt.date(2026, 1, 15))[4:] == ("2026", "2026-H1", "2026-Q1", "2026-01", "2025-12")


def test_rows_of_zeros_are_the_empty_state():
    period = parse_period("2026-11")
    spec = CATALOGUE["cases.daily"]
    zeros = Figure(spec, tuple((d.isoformat(), 0, 0) for d in period.each_day()))
    fs = dataclasses.replace(sample(period), figures={spec.key: zeros})
    assert overview.build(FakeFacts(fs), period, {}).empty
    assert overview.counts(zeros, ("2026-11-01", 0, 1)) and not overview.counts(zeros, ("2026-11-01", 0, 0))
