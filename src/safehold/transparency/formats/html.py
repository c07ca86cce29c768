"""The human-readable transparency report as one self-contained HTML page, for publishing: inline CSS, the
charts as inline SVG drawn on the server, no script and nothing fetched from anywhere, so the file can be put on
any web server or opened from disk (docs/transparency.md, "HTML and PDF")."""

from __future__ import annotations

from importlib.resources import files

from jinja2 import Environment, FunctionLoader, StrictUndefined, select_autoescape

from safehold.transparency.charts import svg
from safehold.transparency.figures import FigureSet
from safehold.transparency.formats import ReportContext
from safehold.transparency.formats.layout import document

#: A table with more rows than this is folded under a "rows behind this figure" summary (a daily figure over a
#: half-year has hundreds); every row is still in the page.
OPEN_ROWS = 25


def _template(name: str) -> str:
    return files("safehold.transparency").joinpath("templates", name).read_text(encoding="utf-8")


_env = Environment(
    loader=FunctionLoader(_template),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(svg=svg, open_rows=OPEN_ROWS)


class HtmlFormat:
    name = "html"
    title = "Human-readable report (HTML page with charts, for publishing)"
    media_type = "text/html; charset=utf-8"
    extension = "html"

    def render(self, figures: FigureSet, context: ReportContext) -> bytes:
        page = _env.get_template("report.html").render(doc=document(figures, context))
        return page.encode("utf-8")
