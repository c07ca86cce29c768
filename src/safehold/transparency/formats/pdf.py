"""The human-readable transparency report as PDF, for publishing and printing: the same document as the HTML
report (:mod:`.layout`), typeset with reportlab's platypus; each chart is drawn as vector graphics from the same
marks as its SVG (:func:`safehold.transparency.charts.marks`): no browser, no raster image.

The bytes depend only on the figure set and the context: reportlab's invariant mode fixes its internal timestamp
(and so the file identifier) and writes no per-run comment, and the creation and modification dates are the
report's ``generated_at`` (docs/transparency.md, "HTML and PDF", for the ``SOURCE_DATE_EPOCH`` caveat). The text
is set in the PDF's standard Helvetica (not embedded), so it can be searched and copied; a character outside its
WinAnsi (Latin-1) encoding does not print correctly.
"""

from __future__ import annotations

import datetime as dt
import io
from html import escape

from reportlab.graphics.shapes import Drawing, Group, PolyLine, String
from reportlab.graphics.shapes import Line as RLine
from reportlab.graphics.shapes import Rect as RRect
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import KeepTogether, LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

from safehold.transparency import charts
from safehold.transparency.figures import FigureSet
from safehold.transparency.formats import ReportContext
from safehold.transparency.formats.layout import Item, Table, document

MARGIN = 18 * mm
#: Chart font size in layout units (the same as the SVG's).
CHART_FONT = 10
#: Table font size and cell padding, in points.
TABLE_FONT, CELL_PAD = 7.5, 4
#: Room added to a column's measured text: a viewer without Helvetica draws it in a wider stand-in font.
SLACK = 1.3


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("title", parent=base["Title"], alignment=TA_LEFT, fontSize=20, leading=24),
        "subtitle": ParagraphStyle("subtitle", parent=base["Normal"], textColor=colors.HexColor("#555555")),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], spaceBefore=14),
        "h3": ParagraphStyle("h3", parent=base["Heading4"], fontName="Helvetica-Bold", spaceBefore=8),
        "body": ParagraphStyle("body", parent=base["BodyText"], fontSize=9.5, leading=12.5),
        "caption": ParagraphStyle(
            "caption", parent=base["BodyText"], fontSize=8.5, leading=11, textColor=colors.HexColor("#444444")
        ),
    }


def drawing(chart: charts.Chart, width: float) -> Drawing:
    """``chart`` as a reportlab drawing ``width`` points wide: the marks of its SVG, with y turned upwards."""
    scale = width / charts.W
    tall = charts.height(chart)
    g = Group()
    for m in charts.marks(chart):
        if isinstance(m, charts.Line):
            g.add(RLine(m.x1, tall - m.y1, m.x2, tall - m.y2, strokeColor=colors.HexColor(m.stroke), strokeWidth=1))
        elif isinstance(m, charts.Rect):
            g.add(RRect(m.x, tall - m.y - m.h, m.w, m.h, fillColor=colors.HexColor(m.fill), strokeColor=None))
        elif isinstance(m, charts.Polyline):
            pts = [v for x, y in m.points for v in (x, tall - y)]
            g.add(PolyLine(pts, strokeColor=colors.HexColor(m.stroke), strokeWidth=2))
        else:
            label = Group(
                String(0, 0, m.text, fontName="Helvetica", fontSize=CHART_FONT, textAnchor=m.anchor,
                       fillColor=colors.HexColor(charts.INK))
            )  # fmt: skip
            label.translate(m.x, tall - m.y)
            label.rotate(-m.rotate)  # SVG turns clockwise with y down; here y is up
            g.add(label)
    g.scale(scale, scale)
    d = Drawing(width, tall * scale)
    d.add(g)
    return d


def _table(t: Table, width: float) -> LongTable:
    """The figure's numbers, the header row repeated on each page; each column as wide as its widest cell (all
    rows measured, not only the first page's), narrowed in proportion if they do not fit ``width``."""
    body = [list(t.header), *[list(r) for r in t.rows]]
    widths = [
        SLACK
        * max(stringWidth(str(r[i]), "Helvetica" if n else "Helvetica-Bold", TABLE_FONT) for n, r in enumerate(body))
        + 2 * CELL_PAD
        for i in range(len(t.header))
    ]
    fit = min(1.0, width / sum(widths))
    lt = LongTable(body, colWidths=[w * fit for w in widths], repeatRows=1, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", TABLE_FONT),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", TABLE_FONT),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8ECF0")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#BBBBBB")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]
    style += [("ALIGN", (i, 0), (i, -1), "RIGHT") for i, num in enumerate(t.numeric) if num]
    lt.setStyle(TableStyle(style))
    return lt


def _item(it: Item, s: dict[str, ParagraphStyle], width: float) -> list:
    head = [Paragraph(escape(it.title), s["h3"])]
    if it.chart is not None:
        head.append(drawing(it.chart, width))
    head += [Paragraph(escape(text), s["caption"]) for text in (it.caption, *it.notes) if text]
    out: list = [KeepTogether(head)]
    if it.table.rows:
        out += [Spacer(1, 3), _table(it.table, width)]
    return [*out, Spacer(1, 8)]


def _pdf_date(at: dt.datetime) -> str:
    at = at.astimezone(dt.UTC) if at.tzinfo else at
    return at.strftime("D:%Y%m%d%H%M%S+00'00'")


class PdfFormat:
    name = "pdf"
    title = "Human-readable report (PDF with charts, for publishing and printing)"
    media_type = "application/pdf"
    extension = "pdf"

    def render(self, figures: FigureSet, context: ReportContext) -> bytes:
        doc = document(figures, context)
        s = _styles()
        out = io.BytesIO()
        made = _pdf_date(context.generated_at)
        pdf = SimpleDocTemplate(
            out,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN,
            bottomMargin=MARGIN,
            title=f"{doc.title} · {doc.subtitle}",
            author=context.provider,
            subject=f"Transparency report for {figures.period.label()}",
            creator="Safehold",
            invariant=1,
        )
        width = pdf.width

        def page(canvas, _doc):
            canvas.setDateFormatter(lambda *_: made)  # the report's time, not the clock's
            canvas.saveState()
            canvas.setFont("Helvetica", 7.5)
            canvas.setFillColor(colors.HexColor("#555555"))
            canvas.drawString(MARGIN, MARGIN / 2, doc.footer)
            canvas.drawRightString(A4[0] - MARGIN, MARGIN / 2, f"Page {canvas.getPageNumber()}")
            canvas.restoreState()

        story: list = [Paragraph(escape(doc.title), s["title"]), Paragraph(escape(doc.subtitle), s["subtitle"])]
        story.append(Paragraph("About these figures", s["h2"]))
        story += [Paragraph(escape(p), s["body"]) for p in doc.about]
        for section in doc.sections:
            story += [Paragraph(escape(section.heading), s["h2"]), Paragraph(escape(section.intro), s["body"])]
            for it in section.items:
                story += _item(it, s, width)
        pdf.build(story, onFirstPage=page, onLaterPages=page)
        return out.getvalue()
