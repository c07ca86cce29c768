"""``safehold audit …``: verify the hash chain, export it for auditors, list records (as ``/v1/audit``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, err, fail, open_output, services
from safehold.errors import SafeholdError

app = typer.Typer(help="The tamper-evident audit log: verify, export, list.", no_args_is_help=True)
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _svc():
    return services(load_index=False)


@app.command("verify")
def verify(as_json: AsJson = False) -> None:
    """Check the whole hash chain. Exit 0 if intact; exit 2 with the first bad record if not."""
    with fail():
        result = _svc().audit.verify()
    if as_json:
        print(json.dumps(result.to_dict()))
    elif result.ok:
        head = f"; head {result.head_seq} {result.head_hash}" if result.head_seq else ""
        out.print(f"audit log intact: {result.checked} records verified{head}", highlight=False)
    else:
        err.print(f"audit log TAMPERED at record {result.first_bad_seq}: {result.reason}", highlight=False)
        err.print(f"({result.checked} records verified before it)")
    if not result.ok:
        raise typer.Exit(2)


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="Output file; '-' for stdout.")] = Path("-"),
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    since: Annotated[dt.datetime | None, typer.Option(help="Only records at or after this UTC time.")] = None,
    until: Annotated[dt.datetime | None, typer.Option(help="Only records before this UTC time.")] = None,
) -> None:
    """Export records with their hashes, so an auditor can re-verify the chain offline (docs/audit.md)."""
    from safehold.audit.service import EXPORT_FORMATS

    with fail():
        svc = _svc()
        window = {"format": fmt, "since": since and since.isoformat(), "until": until and until.isoformat()}
        if fmt not in EXPORT_FORMATS:
            raise SafeholdError("audit.invalid_format", f"--format must be one of {', '.join(EXPORT_FORMATS)}.")
        svc.audit.record(None, "cli", "audit.export", "audit", window)
        with open_output(file) as f:
            n = svc.audit.export(f, fmt=fmt, since=since, until=until)
    err.print(f"exported {n} audit records")


@app.command("list")
def list_records(
    after_seq: Annotated[int, typer.Option(help="Start after this seq.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 50,
    action: Annotated[str | None, typer.Option(help="Exact action, or a prefix ending in '.' (bank.).")] = None,
    as_json: AsJson = False,
) -> None:
    """List audit records in order."""
    with fail():
        rows = _svc().audit.list(limit=limit, after_seq=after_seq, action=action)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("seq", "at (UTC)", "actor", "action", "target", "detail")
    for r in rows:
        detail = json.dumps(r["detail"], sort_keys=True)
        table.add_row(
            str(r["seq"]),
            r["at"][:19].replace("T", " "),
            r["actor"],
            r["action"],
            r["target"] or "",
            detail if len(detail) <= 80 else detail[:77] + "...",
        )
    out.print(table)
