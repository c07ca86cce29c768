"""``safehold classifier …``: the classifiers of new material, their policy and their reviewed precision
(docs/classifiers.md)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Classifiers of new material: scores, thresholds, policy, precision.", no_args_is_help=True)
