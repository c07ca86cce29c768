"""``safehold seen …``: the seen-hash store kept for re-matching past uploads (docs/sharing.md)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from safehold.cli.common import console, fail, progress, services
from safehold.errors import SafeholdError

app = typer.Typer(help="Hashes of scanned content, kept to re-match past uploads.", no_args_is_help=True)
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("status")
def status(as_json: AsJson = False) -> None:
    """How many hashes are kept, the oldest, their size on disk, and how far re-matching got."""
    with fail():
        result = services(load_index=False).rematch.status()
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        out.print(f"{key:>16}  {value if value is not None else '-'}", highlight=False)


@app.command("rematch")
def rematch(
    since: Annotated[
        dt.datetime, typer.Option(help="Re-match the bank entries added at or after this time (UTC when naive).")
    ],
    as_json: AsJson = False,
) -> None:
    """Match the bank entries added since a time against the kept hashes now, opening the matched uploads' cases
    (each once: what the periodic rounds found is not opened again)."""
    since = since.replace(tzinfo=dt.UTC) if since.tzinfo is None else since
    with fail():
        svc = services()
        if not svc.seen.enabled:
            raise SafeholdError(
                "seen.disabled",
                "The seen-hash store is off (SAFEHOLD_SEEN_HASHES): there is nothing to re-match.",
                status=409,
            )
        total = svc.seen.status()["count"]
        with progress() as bar:
            task = bar.add_task("re-matching", total=total or None)
            result = svc.rematch.run_since(since, progress=lambda n: bar.advance(task, n))
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        out.print(
            f"{result.entries} new entries against {result.scanned} kept hashes: {result.candidates} candidates, "
            f"{len(result.cases)} cases opened or updated"
            + (
                f"; {len(result.quarantined)} entries quarantined for flooding, {result.not_opened} matches not opened"
                if result.quarantined or result.not_opened
                else ""
            ),
            highlight=False,
        )
