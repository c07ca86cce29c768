"""``safehold user-reports …`` and ``safehold appeals …``: what users reported and what the reported side appealed,
as ``GET /v1/user-reports`` and ``GET /v1/appeals`` show them (docs/user-reports.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from safehold.cli.common import console, fail, services

app = typer.Typer(help="User and trusted-flagger reports: list, show.", no_args_is_help=True)
appeals_app = typer.Typer(help="Appeals against decisions: list.", no_args_is_help=True)
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Limit = Annotated[int, typer.Option(help="How many, newest first.")]
SHOWN = (
    "id", "status", "category", "content_id", "account_id", "reporter_id", "trusted", "reporter_age_band", "urgent",
    "reference", "case_id", "decision", "received_at", "decided_at",
)  # fmt: skip


def _svc():
    return services(load_index=False)


@app.command("list")
def list_reports(
    status: Annotated[str | None, typer.Option(help="received, actioned or no_action.")] = None,
    category: Annotated[str | None, typer.Option(help="A report category (sextortion, grooming, …).")] = None,
    limit: Limit = 50,
    as_json: AsJson = False,
) -> None:
    """User reports, newest first: category, subject, reporter, weight, case and outcome."""
    with fail():
        page = _svc().user_reports.list(status=status, category=category, limit=limit)
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    table = Table("id", "received", "category", "subject", "reporter", "weight", "case", "status")
    for r in page["reports"]:
        subject = r["content_id"] or f"account {r['account_id']}"
        reporter = r["reporter_id"] + (" (trusted)" if r["trusted"] else "") + (" URGENT" if r["urgent"] else "")
        # Subject and reporter come from strangers (the public form): Text, never Rich markup ("[/]" would raise).
        table.add_row(str(r["id"]), r["received_at"][:19], r["category"], Text(subject), Text(reporter),
                      f"{r['weight']:.2f}", str(r["case_id"] or "—"), r["status"])  # fmt: skip
    out.print(table)
    out.print(f"{page['total']} report(s)")


@app.command("show")
def show_report(report_id: Annotated[int, typer.Argument(help="The report's id.")], as_json: AsJson = False) -> None:
    """One user report in full: context, reliability, case and outcome."""
    with fail():
        from safehold.auth.apikeys import Principal  # here, not at the top: `--help` loads no SQLAlchemy

        r = _svc().user_reports.get(report_id, Principal(name="cli", role="admin"))  # the operator sees every field
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    for key in SHOWN:
        out.print(f"{key}: {r[key]}", markup=False, highlight=False)
    out.print(f"weight: {r['weight']:.2f} ({'; '.join(r['reliability'].get('reasons', []))})", markup=False)
    if r["description"]:
        out.print(f"description: {r['description']}", markup=False, highlight=False)
    for m in r["context"].get("messages", []):
        out.print(f"  {m.get('author', '?')}: {m['text']}", markup=False, highlight=False)
    for shot in r["context"].get("screenshots", []):
        out.print(f"  screenshot sha256 {shot['sha256']} ({shot['size']} bytes, in the evidence store)", markup=False)


@appeals_app.command("list")
def list_appeals(
    status: Annotated[str | None, typer.Option(help="received, upheld or overturned.")] = None,
    limit: Limit = 50,
    as_json: AsJson = False,
) -> None:
    """Appeals, newest first: the case, the decision appealed and who took it, the outcome and its reviewer."""
    with fail():
        page = _svc().appeals.list(status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    table = Table("id", "received", "case", "decision", "decided by", "status", "reviewer")
    for a in page["appeals"]:
        table.add_row(str(a["id"]), a["received_at"][:19], str(a["case_id"]), a["decision"] or "—",
                      a["decided_by"] or "—", a["status"], a["reviewer"] or "—")  # fmt: skip
    out.print(table)
    out.print(f"{page['total']} appeal(s)")
