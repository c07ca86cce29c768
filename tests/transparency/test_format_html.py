"""The HTML transparency report: every section and figure with its chart, numbers and definition, suppressed cells
as published, one self-contained page (no script, nothing fetched), the same bytes for the same input."""

from __future__ import annotations

import dataclasses
import re

from markupsafe import escape

from safehold.transparency.figures import CATALOGUE, FigureSet
from safehold.transparency.formats import FORMATS
from safehold.transparency.formats.layout import SECTIONS
from tests.transparency.format_helpers import CONTEXT, PERIOD, ROWS, assert_deterministic, figure_set
from tests.transparency.report_helpers import DAILY, SMALL, SMALL_CELLS, report_figures, report_rows

HTML = FORMATS["html"]


def _page(figures: FigureSet | None = None, context=CONTEXT) -> str:
    return HTML.render(figures or report_figures(), context).decode("utf-8")


def _figure(page: str, key: str) -> str:
    block = page[page.index(f'id="figure-{key.replace(".", "-")}"') :]
    return block[: block.index("</figure>")]


def test_registered_as_html():
    assert HTML.name == "html" and HTML.extension == "html" and HTML.media_type.startswith("text/html")


def test_every_catalogue_figure_has_a_section():
    placed = [k for *_, keys in SECTIONS for k in keys]
    assert sorted(placed) == sorted(CATALOGUE)  # each once; a new figure must be given its place


def test_title_about_and_sections():
    page = _page()
    title = "Transparency report: Example Chat · Example Ltd · 2026-H1 (2026-01-01 to 2026-06-30)"
    assert f"<title>{title}</title>" in page
    about = page[page.index('id="about"') : page.index('id="found"')]
    assert "2026-07-02 03:00 UTC" in about  # as of
    assert "version 1 of the" in about  # definitions version
    assert "a count from 1 to 9 is published as &#34;&lt;10&#34;" in about  # the small-cell rule of min_cell=10
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == ["About these figures", *[h for _, h, _, _ in SECTIONS]]
    assert "report 7, generated 2026-07-02 04:00 UTC" in page  # footer


def test_each_figure_has_chart_table_and_definition():
    page = _page()
    for key, spec in CATALOGUE.items():
        block = _figure(page, key)
        assert f">{escape(spec.title)}</h3>" in block
        assert f"<figcaption>{escape(spec.counts)}</figcaption>" in block
        assert ("<svg" in block) == (spec.chart != "table")
        header = re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", block)
        if key == "detections.daily":  # a day a row, a source a column
            assert header == ["day", *DAILY]
            assert len(re.findall(r"<tr><td", block)) == PERIOD.days
        else:
            assert header == [c.replace("_", " ") for c in spec.columns]
            assert len(re.findall(r"<tr><td", block)) == len(ROWS[key])


def test_numbers_as_printed():
    page = _page()
    for text in ("98,000", "23.7 %", "4.0 h", "20.0 h", ">(none)<", ">A1<", ">ncmec-hashes<"):
        assert text in page, text


def test_daily_figure_by_source_table():
    rows = [("2026-01-02", "classifier", 12), ("2026-01-01", "hash_match", 30), ("2026-01-02", "hash_match", SMALL)]
    block = _figure(_page(report_figures(**{"detections.daily": rows})), "detections.daily")
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr><td.*?</tr>", block)]
    assert cells == [["2026-01-01", "30", "0"], ["2026-01-02", "&lt;10", "12"]]


def test_suppressed_cells_printed_as_is_and_charted_as_zero():
    page = _page()
    small = f'<td class="num">{escape(SMALL)}</td>'
    for key in {k for k, _, _ in SMALL_CELLS}:
        assert small in _figure(page, key), key
    block = _figure(page, "errors.false_positives")
    assert small * 3 in block  # reviewed, false positives and rate of one detector
    assert "draws 1 suppressed value(s) as zero" in block
    assert "exchange / stopncii, rate: 0.0 %" in block  # its bar: drawn as zero, still there
    assert "draws 1 suppressed value(s)" in _figure(page, "detections.by_source")


def test_self_contained_no_script_nothing_fetched():
    page = _page()
    lower = page.lower()
    for banned in ("<script", "javascript:", "<link", "<img", "<iframe", "@import", "url(", " src=", "<object"):
        assert banned not in lower, banned
    assert set(re.findall(r'href="([^"]*)"', page)) <= {f"#{a}" for a, *_ in SECTIONS} | {"#about"}
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}  # SVG's namespace


def test_deterministic():
    assert_deterministic(HTML)
    assert HTML.render(report_figures(), CONTEXT) == HTML.render(report_figures(), CONTEXT)
    assert "report 42," in _page(context=dataclasses.replace(CONTEXT, report_id=42))


def test_operator_names_are_escaped():
    page = _page(context=dataclasses.replace(CONTEXT, provider="<b>Acme & Co</b>"))
    assert "&lt;b&gt;Acme &amp; Co&lt;/b&gt;" in page and "<b>" not in page


def test_empty_figures_and_unknown_figure():
    page = _page(figure_set({}))
    assert page.count("Nothing was counted in the period.") == len(CATALOGUE) and "<svg" not in page
    record = report_figures().record()
    record["figures"]["future.figure"] = {"columns": ["kind", "items"], "rows": [["x", 12]], "note": "new"}
    page = _page(FigureSet.from_record(record))
    assert "<h2>Other figures</h2>" in page and 'id="figure-future-figure"' in page
    assert '<p class="note">new</p>' in page  # the figure's own note


def test_no_small_cell_rule():
    page = _page(figure_set(), context=dataclasses.replace(CONTEXT, min_cell=1))
    assert "no count is suppressed in this report" in page and "a count from 1 to 0" not in page


def test_long_tables_folded_but_complete():
    block = _figure(_page(), "detections.daily")
    assert f"<summary>The {PERIOD.days} rows behind this figure</summary>" in block
    assert len(re.findall(r"<tr><td", block)) == PERIOD.days
    assert "<details>" not in _figure(_page(), "cases.sla")  # short tables stay open


def test_rows_kept_as_published():
    """Nothing the figures do not hold is added: every dimension value printed is one of the figure's."""
    page = _page()
    block = _figure(page, "actions.by_kind")
    cells = set(re.findall(r"<td>(.*?)</td>", block))
    assert cells == {str(v) for r in report_rows()["actions.by_kind"] for v in r[:2]}
