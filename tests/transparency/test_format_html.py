"""The HTML transparency report: every section and figure with its chart, numbers and definition, suppressed cells
as published, one self-contained page (no script, nothing fetched), the same bytes for the same input."""

from __future__ import annotations

import dataclasses
import re

from markupsafe import escape

from safehold.transparency.figures import CATALOGUE, FigureSet
from safehold.transparency.formats import FORMATS
from safehold.transparency.formats.layout import SECTIONS
from tests.transparency.sample_figures import CONTEXT, PERIOD, ROWS, SMALL, figure_set

HTML = FORMATS["html"]


def _page(figures: FigureSet | None = None, context=CONTEXT) -> str:
    return HTML.render(figures or figure_set(), context).decode("utf-8")


def test_registered_as_html():
    assert HTML.name == "html" and HTML.extension == "html" and HTML.media_type.startswith("text/html")


def test_every_catalogue_figure_has_a_section():
    placed = [k for *_, keys in SECTIONS for k in keys]
    assert sorted(placed) == sorted(CATALOGUE)  # each once; a new figure must be given its place


def test_title_about_and_sections():
    page = _page()
    assert (
        "<title>Transparency report: Example Social · Example Platforms Ltd · 2026-Q1 (2026-01-01 to 2026-03-31)"
        in page
    )
    about = page[page.index('id="about"') : page.index('id="found"')]
    assert "2026-04-02 06:30 UTC" in about  # as of
    assert "version 1 of the" in about  # definitions version
    assert "a count from 1 to 9 is published as &#34;&lt;10&#34;" in about  # the small-cell rule of min_cell=10
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == ["About these figures", *[h for _, h, _, _ in SECTIONS]]


def test_each_figure_has_chart_table_and_definition():
    page = _page()
    for key, spec in CATALOGUE.items():
        anchor = key.replace(".", "-")
        block = page[page.index(f'id="figure-{anchor}"') :]
        block = block[: block.index("</figure>")]
        assert f">{escape(spec.title)}</h3>" in block
        assert f"<figcaption>{escape(spec.counts)}</figcaption>" in block
        assert ("<svg" in block) == (spec.chart != "table")
        header = re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", block)
        if key == "detections.daily":  # a day a row, a source a column
            assert header == ["day", "hash_match", "classifier", "user_report", "grooming"]
            assert len(re.findall(r"<tr><td", block)) == PERIOD.days
        else:
            assert header == [c.replace("_", " ") for c in spec.columns]
            assert len(re.findall(r"<tr><td", block)) == len(ROWS[key])


def test_daily_figure_by_source_table():
    rows = (("2026-01-02", "classifier", 12), ("2026-01-01", "hash_match", 30), ("2026-01-02", "hash_match", SMALL))
    block = _page(figure_set(**{"detections.daily": rows}))
    block = block[block.index('id="figure-detections-daily"') :]
    block = block[: block.index("</figure>")]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr><td.*?</tr>", block)]
    assert cells == [["2026-01-01", "30", "0"], ["2026-01-02", "&lt;10", "12"]]


def test_numbers_as_printed():
    page = _page()
    for text in ("1,482,113", "30.9 %", "2.2 h", "2.0 d", ">(none)<", ">A1<", ">ncmec<"):
        assert text in page, text


def test_suppressed_cells_printed_as_is_and_charted_as_zero():
    page = _page()
    assert page.count(f'<td class="num">{escape(SMALL)}</td>') >= 10
    block = page[page.index('id="figure-errors-false_positives"') :]
    block = block[: block.index("</figure>")]
    assert "draws 1 value(s) under the small-cell threshold as zero" in block
    assert '<rect x="' in block and "bank / iwf, rate: 0.0 %" in block  # drawn as zero, still there


def test_self_contained_no_script_nothing_fetched():
    page = _page()
    lower = page.lower()
    for banned in ("<script", "javascript:", "<link", "<img", "<iframe", "@import", "url(", " src=", "<object"):
        assert banned not in lower, banned
    assert set(re.findall(r'href="([^"]*)"', page)) <= {f"#{a}" for a, *_ in SECTIONS} | {"#about"}
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}  # SVG's namespace


def test_deterministic():
    assert HTML.render(figure_set(), CONTEXT) == HTML.render(figure_set(), CONTEXT)
    later = dataclasses.replace(CONTEXT, report_id=42)
    assert "report 42," in _page(context=later)


def test_operator_names_are_escaped():
    page = _page(context=dataclasses.replace(CONTEXT, provider="<b>Acme & Co</b>"))
    assert "&lt;b&gt;Acme &amp; Co&lt;/b&gt;" in page and "<b>" not in page


def test_empty_figures_and_unknown_figure():
    empty = figure_set(**{k: () for k in CATALOGUE})
    page = _page(empty)
    assert page.count("Nothing was counted in the period.") == len(CATALOGUE) and "<svg" not in page
    record = figure_set().record()
    record["figures"]["future.figure"] = {"columns": ["kind", "items"], "rows": [["x", 12]], "note": "new"}
    page = _page(FigureSet.from_record(record))
    assert "<h2>Other figures</h2>" in page and 'id="figure-future-figure"' in page
    assert '<p class="note">new</p>' in page  # the figure's own note


def test_no_small_cell_rule():
    about = _page(context=dataclasses.replace(CONTEXT, min_cell=1))
    assert "no count is suppressed in this report" in about and "a count from 1 to 0" not in about


def test_long_tables_folded_but_complete():
    page = _page()
    block = page[page.index('id="figure-detections-daily"') :]
    block = block[: block.index("</figure>")]
    assert f"<summary>The {PERIOD.days} rows behind this figure</summary>" in block
    assert len(re.findall(r"<tr><td", block)) == PERIOD.days
