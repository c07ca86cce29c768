"""The PDF transparency report: a real PDF whose text (read back without reportlab) has every section, figure,
number and suppressed cell, charts drawn as vectors (no image), page numbers, and the same bytes for the same
input."""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
import subprocess
import zlib

import pytest

from safehold.transparency.charts import chart_for
from safehold.transparency.figures import CATALOGUE
from safehold.transparency.formats import FORMATS
from safehold.transparency.formats.layout import SECTIONS
from safehold.transparency.formats.pdf import drawing
from tests.transparency.format_helpers import CONTEXT, PERIOD, assert_deterministic, figure_set
from tests.transparency.report_helpers import SMALL, report_figures

PDF = FORMATS["pdf"]


def _unescape(s: bytes) -> str:
    """A PDF literal string's bytes: backslash escapes (octal ones included) resolved, in WinAnsi (cp1252)."""
    out = re.sub(rb"\\([0-7]{1,3}|.)", lambda m: bytes([int(m[1], 8)]) if m[1].isdigit() else m[1], s)
    return out.decode("cp1252")


def _streams_text(pdf: bytes) -> str:
    """The text the page content streams show, decoded with the standard library only (reportlab writes its
    streams ASCII85- then Flate-encoded): the strings of ``Tj`` in order, a new line at each positioning
    operator."""
    shown = []
    for m in re.finditer(rb"/Filter \[ /ASCII85Decode /FlateDecode \][^>]*>>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        content = zlib.decompress(base64.a85decode(m.group(1).strip(), adobe=True))
        for string, _ in re.findall(rb"\(((?:\\.|[^\\)])*)\) Tj|\b(T\*|Td|TD|Tm|ET)(?=\s)", content):
            shown.append(_unescape(string) if string else "\n")
    return "".join(shown)


def _text(pdf: bytes, tmp_path) -> str:
    """The PDF's text: by poppler's pdftotext when installed, else from the content streams."""
    if shutil.which("pdftotext"):
        path = tmp_path / "report.pdf"
        path.write_bytes(pdf)
        return subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
        ).stdout
    return _streams_text(pdf)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return PDF.render(report_figures(), CONTEXT)


def test_registered_as_pdf():
    assert PDF.name == "pdf" and PDF.extension == "pdf" and PDF.media_type == "application/pdf"


def test_a_pdf(pdf):
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    pages = int(re.search(rb"/Count (\d+) /Kids", pdf).group(1))
    assert pages > 3


def test_text_has_sections_figures_numbers_and_small_cells(pdf, tmp_path):
    text = " ".join(_text(pdf, tmp_path).split())
    assert "Transparency report: Example Chat" in text
    assert "About these figures" in text and "2026-07-02 03:00 UTC" in text
    assert 'a count from 1 to 9 is published as "<10"' in text
    for _, heading, _, _ in SECTIONS:
        assert heading in text
    for spec in CATALOGUE.values():
        assert spec.title in text
        assert " ".join(spec.counts.split()[:6]) in text  # the definition, as caption (wrapped over lines)
    for number in ("98,000", "23.7 %", "4.0 h", "5,000"):
        assert number in text
    assert SMALL in text
    assert "Page 1" in text and "Page 2" in text


def test_charts_are_vectors_not_images(pdf):
    assert b"/Subtype /Image" not in pdf
    chart = chart_for(figure_set()["detections.by_source"], PERIOD.each_day())
    d = drawing(chart, 400)
    assert d.width == 400 and d.height > 100
    drawn = d.contents[0].contents
    assert sum(type(m).__name__ == "Rect" for m in drawn) == len(chart.categories) + 1  # the bars and the legend


def test_deterministic_with_the_reports_time(pdf):
    assert PDF.render(report_figures(), CONTEXT) == pdf
    assert_deterministic(PDF)
    assert b"/CreationDate (D:20260702040000+00'00')" in pdf
    later = dataclasses.replace(CONTEXT, generated_at=CONTEXT.generated_at.replace(hour=10))
    assert b"/CreationDate (D:20260702100000+00'00')" in PDF.render(report_figures(), later)


def test_empty_figures(tmp_path):
    pdf = PDF.render(figure_set({}), CONTEXT)
    text = " ".join(_text(pdf, tmp_path).split())
    assert text.count("Nothing was counted in the period.") == len(CATALOGUE)
