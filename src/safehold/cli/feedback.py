"""``safehold feedback …`` (opinions sent to hash exchanges about their entries) and ``safehold exchange contribute``
/ ``export-case`` (a confirmed case's hashes to a peer, or in NCMEC's XML): the same operations as ``/v1/feedback``,
``/v1/cases/{id}/contribute`` and ``/v1/cases/{id}/hashes``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli import exchanges as exchange_cmds
from safehold.cli.common import console, err, fail, services

app = typer.Typer(help="Feedback to hash exchanges: list opinions, retry failed ones, send what is due.",
                  no_args_is_help=True)  # fmt: skip
out = console()


def _svc():
    return services(load_index=False)


@app.command("list")
def feedback_list(
    entry: Annotated[int | None, typer.Option(help="Only opinions on this bank entry.")] = None,
    case: Annotated[int | None, typer.Option(help="Only opinions from this case.")] = None,
    exchange: Annotated[str | None, typer.Option(help="Only this exchange.")] = None,
    status: Annotated[str | None, typer.Option(help="queued, sent, failed, superseded or unsupported.")] = None,
    after_id: Annotated[int, typer.Option(help="Start after this id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List opinions in id order."""
    with fail():
        rows = _svc().feedback.list(
            entry_id=entry, case_id=case, exchange=exchange, status=status, after_id=after_id, limit=limit
        )
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("id", "exchange", "entry", "external id", "verdict", "case", "status", "attempts", "last error")
    for r in rows:
        error = f"[{r['last_error_code']}] {r['last_error']}" if r["last_error_code"] else ""
        exchange = r["exchange"] + (" (deleted)" if r["exchange_deleted"] else "")
        table.add_row(str(r["id"]), exchange, str(r["entry_id"]), r["external_id"] or "", r["verdict"],
                      str(r["case_id"] or ""), r["status"], str(r["attempts"]), error)  # fmt: skip
    out.print(table)


@app.command("retry")
def feedback_retry(feedback_id: Annotated[int, typer.Argument(help="Feedback id.")]) -> None:
    """Queue a failed opinion again (its attempts counted from zero)."""
    with fail():
        r = _svc().feedback.retry(feedback_id, actor="cli")
    out.print(f"feedback {r['id']} to {r['exchange']} queued again")


@app.command("run")
def feedback_run() -> None:
    """Queue the opinions of cases closed since the last round and send every one due now, then exit (the
    ``feedback.deliver`` task does the same in `safehold serve` or on Celery workers)."""
    with fail():
        svc = _svc()
        total = 0
        while sent := svc.feedback.run_once(limit=100):
            total += sent
    out.print(f"{total} opinion(s) sent or attempted")


@exchange_cmds.app.command("contribute")
def contribute(
    case: Annotated[int, typer.Option(help="A confirmed case (closed as csam).")],
    to: Annotated[str, typer.Option("--to", help="The exchange to send its hashes to.")],
) -> None:
    """Send a confirmed case's hashes (never media) to an exchange that takes contributions; once per exchange."""
    with fail():
        r = _svc().contributions.contribute(case, to, actor="cli")
    again = " (already sent)" if r.get("duplicate") else ""
    out.print(f"case {case}: {r['hashes']} hash(es) to {to}, {r['accepted']} accepted{again}")


@exchange_cmds.app.command("export-case")
def export_case(
    case: Annotated[int, typer.Option(help="A confirmed case (closed as csam).")],
    fmt: Annotated[str, typer.Option("--format", help="ncmec-xml (NCMEC's hash-sharing XML) or csv.")] = "ncmec-xml",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; default: stdout.")] = None,
) -> None:
    """Write a confirmed case's hashes (never media) in NCMEC's XML or CSV."""
    with fail():
        svc = _svc()
        if output is None:
            r = svc.contributions.export(case, fmt, sys.stdout.buffer, actor="cli")
        else:
            with output.open("wb") as f:
                r = svc.contributions.export(case, fmt, f, actor="cli")
    err.print(f"case {case}: {r['records']} hash(es) written")
