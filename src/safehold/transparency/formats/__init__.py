"""Report formats: each turns a (privacy-suppressed) :class:`~safehold.transparency.figures.FigureSet` into the
bytes of one document, deterministically (the same figure set and context give the same bytes), and never reads
the store. :data:`FORMATS` is the registry the service, the CLI, the API and the console offer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from safehold.transparency.figures import FigureSet


@dataclass(frozen=True)
class ReportContext:
    """What a report says about who publishes it and when, beside the figures.

    ``provider`` and ``service`` are the operator's names (settings ``SAFEHOLD_TRANSPARENCY_PROVIDER`` and
    ``SAFEHOLD_TRANSPARENCY_SERVICE``); ``min_cell`` is the small-cell threshold the figures were suppressed
    with: a suppressed cell holds the string ``"<min_cell"`` instead of a number.
    """

    provider: str
    service: str
    generated_at: dt.datetime
    min_cell: int
    report_id: int | None = None


class ReportFormat(Protocol):
    name: str  # the --format value: dsa, reg2021-1232, trust, html, pdf, json
    title: str
    media_type: str
    extension: str

    def render(self, figures: FigureSet, context: ReportContext) -> bytes: ...


def _registry() -> dict[str, ReportFormat]:
    from safehold.transparency.formats import dsa, json_format, reg2021_1232, trust
    from safehold.transparency.formats.html import HtmlFormat
    from safehold.transparency.formats.pdf import PdfFormat

    found = [
        json_format.JsonFormat(),
        dsa.DsaFormat(),
        reg2021_1232.Reg20211232Format(),
        trust.TrustFormat(),
        HtmlFormat(),
        PdfFormat(),
    ]
    return {f.name: f for f in found}


FORMATS: dict[str, ReportFormat] = _registry()
