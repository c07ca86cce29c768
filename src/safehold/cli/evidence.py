"""``safehold evidence …``: the preserved-evidence register, legal holds, law-enforcement exports and the
retention purge, the same operations as ``/v1/evidence`` (docs/evidence.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, err, fail, services
from safehold.cli.reports import print_package

app = typer.Typer(help="Preserved evidence: register, legal holds, export, purge.", no_args_is_help=True)
out = console()

ACTOR = "cli"
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _evidence():
    return services(load_index=False).evidence


def _when(value) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def _print_json(rows) -> None:
    for r in rows:
        print(json.dumps(r, default=str))


@app.command("list")
def list_evidence(
    case: Annotated[int | None, typer.Option(help="Only this case's evidence.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account's evidence.")] = None,
    include_purged: Annotated[
        bool, typer.Option("--purged", help="Include purged records (proof of deletion).")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    as_json: AsJson = False,
) -> None:
    """List preserved evidence (hashes, sizes, dates; never content)."""
    with fail():
        rows = _evidence().list(
            case_id=case, account_id=account, include_purged=include_purged, limit=limit, offset=offset
        )
    if as_json:
        return _print_json(rows)
    table = Table("id", "case", "account", "kind", "name", "size", "sha256", "preserved", "purged")
    for e in rows:
        table.add_row(
            str(e["id"]),
            str(e["case_id"] or ""),
            e.get("account_id") or "",
            e["kind"],
            e.get("filename") or "",
            str(e["size"]),
            e["sha256"][:16] + "…",
            _when(e["preserved_at"]),
            _when(e.get("purged_at")) if e.get("purged_at") else "",
        )
    out.print(table)


@app.command("show")
def show(
    evidence_id: Annotated[int, typer.Argument(help="Evidence id.")],
    as_json: AsJson = False,
) -> None:
    """Show one record with its retention: when it expires, and whether a hold or a report keeps it."""
    with fail():
        e = _evidence().get(evidence_id)
    if as_json:
        print(json.dumps(e, default=str))
        return
    keep = e.get("retention") or {}
    out.print(f"[bold]Evidence {e['id']}[/] ({e['kind']}) of case {e['case_id'] or '-'}", highlight=False)
    for name, value in (
        ("file", e.get("filename")),
        ("account", e.get("account_id")),
        ("size", f"{e['size']} bytes"),
        ("sha256", e["sha256"]),
        ("md5", e["md5"]),
        ("preserved", f"{_when(e['preserved_at'])} by {e['preserved_by']}"),
        ("jurisdiction", keep.get("jurisdiction") or e.get("jurisdiction")),
        ("expires", _when(keep.get("expires_at")) if keep.get("expires_at") else "not while something needs it"),
        ("legal hold", "yes" if keep.get("held") else "no"),
        ("needed by an unfinished report", "yes" if keep.get("needed_by_report") else "no"),
        ("purged", f"{_when(e['purged_at'])} by {e.get('purged_by')}" if e.get("purged_at") else None),
    ):
        if value:
            out.print(f"  {name}: {value}", highlight=False)


@app.command("export")
def export(
    reason: Annotated[str, typer.Option(help="Why: the legal process it answers (kept in the audit log).")],
    case: Annotated[int | None, typer.Option(help="Export this case's evidence…")] = None,
    report: Annotated[int | None, typer.Option(help="…or this report's.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the zip (default: home/exports).")] = None,
) -> None:
    """Write a law-enforcement package (zip: files, manifest of hashes, records) and its .sha256 checksum file.

    The package holds decrypted evidence: keep it as such."""
    with fail():
        with err.status("exporting…"):
            package = _evidence().export(case_id=case, report_id=report, actor=ACTOR, reason=reason, dest_dir=out_dir)
    print_package(package)


@app.command("hold")
def hold(
    reason: Annotated[str, typer.Option(help="Why, e.g. a preservation request (kept in the audit log).")],
    case: Annotated[int | None, typer.Option(help="Hold this case's evidence…")] = None,
    account: Annotated[str | None, typer.Option(help="…or all evidence about this account.")] = None,
    reference: Annotated[str | None, typer.Option(help="The request's reference number.")] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help="Lapse after this many days (default: until released).")
    ] = None,
) -> None:
    """Place a legal hold: nothing it covers is purged until it is released (or lapses)."""
    with fail():
        h = _evidence().hold(
            case_id=case, account_id=account, reason=reason, actor=ACTOR, reference=reference, days=days
        )
    subject = f"case {h['case_id']}" if h.get("case_id") is not None else f"account {h['account_id']}"
    until = f" until {_when(h['expires_at'])}" if h.get("expires_at") else " until released"
    out.print(f"hold {h['id']} on {subject}{until}", highlight=False)


@app.command("release")
def release(
    hold_id: Annotated[int, typer.Argument(help="Hold id (see `evidence holds`).")],
    note: Annotated[str | None, typer.Option(help="Why it is released.")] = None,
) -> None:
    """Release a legal hold; the evidence's normal retention applies again."""
    with fail():
        h = _evidence().release(hold_id, ACTOR, note=note)
    out.print(f"hold {h['id']} released")


@app.command("holds")
def holds(
    show_all: Annotated[bool, typer.Option("--all", help="Include released and lapsed holds.")] = False,
    as_json: AsJson = False,
) -> None:
    """List legal holds (active ones unless --all)."""
    with fail():
        rows = _evidence().holds(active_only=not show_all)
    if as_json:
        return _print_json(rows)
    table = Table("id", "case", "account", "reason", "reference", "placed", "expires", "released")
    for h in rows:
        released = f"{_when(h['released_at'])} by {h['released_by']}" if h.get("released_at") else ""
        table.add_row(
            str(h["id"]),
            str(h["case_id"] or ""),
            h.get("account_id") or "",
            h["reason"],
            h.get("reference") or "",
            f"{_when(h['placed_at'])} by {h['placed_by']}",
            _when(h.get("expires_at")) if h.get("expires_at") else "",
            released,
        )
    out.print(table)


@app.command("purge")
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete evidence whose retention has run out (the server also does this hourly).

    Each deletion is recorded in the audit log with the file's hashes: the proof of deletion. Nothing under a hold
    or needed by an unfinished report is touched."""
    with fail():
        result = _evidence().purge(ACTOR, dry_run=dry_run)
    if as_json:
        print(json.dumps(result, default=str))
        return
    for item in result.get("items", []):
        out.print(f"  evidence {item['evidence_id']}  sha256 {item['sha256']}  {item['size']} bytes", highlight=False)
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {result['purged']} item(s), {result['bytes']} bytes")
