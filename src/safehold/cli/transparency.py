"""``safehold transparency …``: the overview's figures, transparency reports for a period, and the daily facts
they are computed from (docs/transparency.md)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Transparency: figures for a period, reports (DSA, 2021/1232, TRUST, HTML, PDF).", no_args_is_help=True
)
