"""Charts: suppressed cells ("<10") drawn as zero and counted, the layout shared by SVG and PDF (legend rows,
level or slanted labels, round duration axes)."""

from __future__ import annotations

from dataclasses import replace

from safehold.transparency import charts
from safehold.transparency.charts import Chart, chart_for, marks, svg
from safehold.transparency.figures import CATALOGUE, Figure
from safehold.transparency.formats.layout import cell
from tests.transparency.format_helpers import PERIOD
from tests.transparency.report_helpers import SMALL, report_figures


def test_a_secondary_cell_is_drawn_as_zero_counted_and_printed_as_x():
    """ "x" (hidden to protect a small cell; may be large) is no number: never plotted as one, printed as it is."""
    rows = (("hash_match", 140, 130), ("grooming", "x", "x"), ("livestream", "<10", "<10"))
    chart = chart_for(Figure(CATALOGUE["detections.by_source"], rows))
    assert chart.suppressed == 2 and dict(zip(chart.categories, chart.series[0][1], strict=True))["grooming"] == 0
    assert charts.number("x") is None and cell("x", "signals", False) == "x"


def test_bar_chart_with_suppressed_cells():
    chart = chart_for(report_figures()["detections.by_source"])
    assert chart.categories[:2] == ("hash_match", "classifier") and chart.categories[-1] == "livestream"
    assert chart.series == (("signals", (140.0, 60.0, 40.0, 25.0, 15.0, 10.0, 8.0, 0.0)),)  # largest first
    assert chart.suppressed == 1  # the plotted column only; the "cases" column is not drawn
    assert "1 suppressed value(s) are drawn as zero" in svg(chart, "c")


def test_line_chart_with_suppressed_cells():
    fig = report_figures()["detections.daily"]
    chart = chart_for(fig, PERIOD.each_day())
    assert len(chart.categories) == PERIOD.days
    assert chart.suppressed == sum(r[2] == SMALL for r in fig.rows) > 0
    grooming = dict(chart.series)["grooming"]
    assert sum(grooming) == sum(r[2] for r in fig.rows if r[1] == "grooming" and r[2] != SMALL)


def test_svg_draws_the_marks():
    chart = chart_for(report_figures()["cases.by_source"])
    drawn = marks(chart)
    page = svg(chart, "x")
    assert page.count("<rect") == sum(isinstance(m, charts.Rect) for m in drawn)
    assert page.count("<text") == sum(isinstance(m, charts.Text) for m in drawn)
    assert 'viewBox="0 0 640 300"' in page


def test_legend_wraps_and_chart_grows():
    series = tuple((f"source-{i}", (1.0, 2.0)) for i in range(7))
    chart = Chart("line", "t", ("2026-01-01", "2026-01-02"), series)
    assert charts.height(chart) == charts.H + charts.LEGEND_ROW
    legend = [m for m in marks(chart) if isinstance(m, charts.Rect)]
    assert {m.y for m in legend} == {charts.TOP, charts.TOP + charts.LEGEND_ROW}
    assert max(m.x + charts.LEGEND_STEP for m in legend) <= charts.W


def test_labels_level_when_they_fit_else_slanted_inside_the_box():
    few = Chart("bar", "t", ("a", "b"), (("n", (1.0, 2.0)),))
    assert all(m.rotate == 0 for m in marks(few) if isinstance(m, charts.Text))
    many = Chart("bar", "t", tuple(f"a long category {i}" for i in range(20)), (("n", (1.0,) * 20),))
    slanted = [m for m in marks(many) if isinstance(m, charts.Text) and m.rotate]
    assert len(slanted) == 20 and all(len(m.text) <= charts.LABEL_CHARS for m in slanted)
    assert all(m.x - len(m.text) * charts.SLANT_W >= 0 for m in slanted)  # the first ones are cut to fit


def test_duration_axis_is_round_in_its_unit():
    chart = chart_for(report_figures()["decisions.time_to_decision"])
    axis = [m.text for m in marks(chart) if isinstance(m, charts.Text) and m.anchor == "end" and not m.rotate]
    assert axis == ["0 s", "5.0 h", "10.0 h", "15.0 h", "20.0 h"]


def test_no_chart_for_empty_or_table_figures():
    assert chart_for(Figure(CATALOGUE["cases.sla"], ())) is None
    table = replace(CATALOGUE["exchanges.activity"], chart="table")
    assert chart_for(Figure(table, (("x", "shared", 1),))) is None
