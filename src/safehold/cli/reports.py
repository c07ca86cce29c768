"""``safehold report …``: reports to authorities, the same operations as ``/v1/reports``, plus ``report stand-in``,
a local CyberTipline to rehearse filing against (docs/reporting.md)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, err, fail, open_output, services
from safehold.errors import SafeholdError

app = typer.Typer(
    help="Reports to authorities (NCMEC's CyberTipline, …): draft, edit, submit, track.", no_args_is_help=True
)
out = console()

ACTOR = "cli"
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
STATUS_KEYS = ("id", "status", "external_id", "environment", "step", "attempts", "next_attempt_at", "last_code",
               "last_error", "submitted_at", "finished_at")  # fmt: skip
ReportId = Annotated[int, typer.Argument(help="Report id (see `report list`).")]


def _reports():
    return services(load_index=False).reports


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def _outcome(r: dict) -> str:
    """A report's state in a few words: status, NCMEC's id, what went wrong."""
    text = r["status"]
    if r.get("external_id"):
        text += f" as {r['external_id']}"
    if r.get("status") == "submitted" and r.get("step"):
        text += f" (step {r['step']}, attempt {r['attempts']})"
    if r.get("last_error"):
        text += f"; last error [{r.get('last_code') or '?'}]: {r['last_error']}"
    return text


@app.command("list")
def list_reports(
    status: Annotated[str | None, typer.Option(help="draft, submitted, finished, failed or retracted.")] = None,
    authority: Annotated[str | None, typer.Option(help="ncmec, nca, cybertip_ca or esafety.")] = None,
    case: Annotated[int | None, typer.Option(help="Only the report holding this case.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    as_json: AsJson = False,
) -> None:
    """List reports, newest first."""
    with fail():
        rows = _reports().list(status=status, authority=authority, case_id=case, limit=limit, offset=offset)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("id", "authority", "status", "external id", "account", "cases", "files", "incident type", "created")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["authority"],
            r["status"],
            r["external_id"] or "",
            r["account_id"] or "",
            ", ".join(map(str, r["case_ids"])),
            str(r["file_count"]),
            r["fields"].get("incident_type") or "",
            _when(r["created_at"]),
        )
    out.print(table)


@app.command("show")
def show(report_id: ReportId, as_json: AsJson = False) -> None:
    """Show a report: its fields, cases and files, with whether staff viewed each file (from the audit log)."""
    with fail():
        r = _reports().get(report_id)
    if as_json:
        print(json.dumps(r))
        return
    f = r["fields"]
    out.print(f"[bold]Report {r['id']}[/] to {r['authority_title']}: {_outcome(r)}", highlight=False)
    facts = {
        "incident type": f.get("incident_type"),
        "annotations": ", ".join(f.get("annotations") or []),
        "escalate": f.get("escalate_to_high_priority"),
        "description": f.get("incident_description"),
        "additional info": f.get("additional_info"),
        "reported user": json.dumps(f["reported_user"]) if f.get("reported_user") else None,
        "account": r["account_id"],
        "incident at": r.get("incident_at"),
        "environment": r.get("environment"),
        "cases": ", ".join(f"{c['id']} ({c['decision']} {c['classification'] or ''})".strip() for c in r["cases"]),
        "created": f"{_when(r['created_at'])} by {r['created_by']}",
        "submitted": f"{_when(r['submitted_at'])} by {r['submitted_by']}" if r["submitted_at"] else None,
        "finished": _when(r["finished_at"]) if r["finished_at"] else None,
    }
    for name, value in facts.items():
        if value:
            out.print(f"  {name}: {value}", highlight=False)
    table = Table("file", "name", "sha256", "class", "viewed", "exif viewed", "annotations", "NCMEC file id")
    for x in r["files"]:
        reveals = x["viewed"].get("reveals", []) if x.get("viewed") else []
        seen = f"yes ({', '.join(v['actor'] for v in reveals)})" if x["viewed_by_esp"] else "no"
        table.add_row(
            str(x["id"]),
            x["filename"] or "",
            x["sha256"][:16] + "…",
            x["classification"] or "",
            seen,
            "yes" if x["exif_viewed_by_esp"] else "no",
            ", ".join(x["fields"].get("annotations") or []),
            x["file_id"] or "",
        )
    out.print(table)


@app.command("draft")
def draft(
    case_id: Annotated[int, typer.Argument(help="A closed case with a violating decision.")],
    authority: Annotated[str, typer.Option(help="ncmec, nca, cybertip_ca or esafety.")] = "ncmec",
    as_json: AsJson = False,
) -> None:
    """Put a confirmed case into its incident's draft report (created if needed); preserves its evidence."""
    with fail():
        r = _reports().draft_from_case(case_id, ACTOR, authority=authority)
    if as_json:
        print(json.dumps(r))
        return
    cases = ", ".join(str(c["id"]) for c in r["cases"])
    out.print(f"report {r['id']} ({r['status']}) holds case(s) {cases} and {len(r['files'])} file(s)")


@app.command("edit")
def edit(
    report_id: ReportId,
    incident_type: Annotated[str | None, typer.Option(help="A CyberTipline incident type.")] = None,
    annotation: Annotated[
        list[str] | None, typer.Option("--annotation", "-a", help="A report annotation (repeat); replaces the list.")
    ] = None,
    clear_annotations: Annotated[bool, typer.Option("--clear-annotations", help="Remove every annotation.")] = False,
    escalate: Annotated[str | None, typer.Option(help="Ask NCMEC for high priority, saying why ('' clears).")] = None,
    description: Annotated[str | None, typer.Option(help="What happened ('' clears).")] = None,
    info: Annotated[str | None, typer.Option(help="Additional information ('' clears).")] = None,
    changes: Annotated[
        str | None,
        typer.Option(help='More changes as JSON, e.g. \'{"files": {"3": {"annotations": ["generativeAi"]}}}\'.'),
    ] = None,
) -> None:
    """Change a draft (or failed) report's fields. Values are checked against the CyberTipline schema."""
    with fail():
        update = _changes(changes)
        if incident_type is not None:
            update["incident_type"] = incident_type
        if annotation or clear_annotations:
            update["annotations"] = [] if clear_annotations else annotation
        texts = {"escalate_to_high_priority": escalate, "incident_description": description, "additional_info": info}
        for key, value in texts.items():
            if value is not None:
                update[key] = value or None
        if not update:
            raise SafeholdError("cli.nothing_to_change", "Give at least one change (see --help).")
        r = _reports().update(report_id, update, ACTOR)
    out.print(f"report {r['id']} updated: {', '.join(sorted(update))}")


def _changes(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SafeholdError("cli.invalid_json", f"--changes is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SafeholdError("cli.invalid_json", "--changes is a JSON object.")
    return value


@app.command("document")
def document(
    report_id: ReportId,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the CyberTipline <report> XML as it would be filed now (validated against the schema)."""
    with fail():
        xml = _reports().document(report_id)
        with open_output(output or Path("-")) as f:
            f.write(xml if output else xml + b"\n")
    if output is not None:
        err.print(f"wrote {output} ({len(xml)} bytes)")


@app.command("submit")
def submit(
    report_id: ReportId,
    wait: Annotated[bool, typer.Option("--wait", help="File it now and wait for the outcome.")] = False,
) -> None:
    """Submit a report for filing. Without --wait the server's worker files it (`safehold serve`)."""
    with fail():
        if wait:
            with err.status(f"filing report {report_id}…"):
                r = _reports().submit(report_id, ACTOR, wait=True)
        else:
            r = _reports().submit(report_id, ACTOR)
    out.print(f"report {r['id']}: {_outcome(r)}", highlight=False)
    if wait and r["status"] not in ("finished", "submitted"):
        raise typer.Exit(2)


@app.command("status")
def status(report_id: ReportId, as_json: AsJson = False) -> None:
    """Show where a report's filing stands: status, NCMEC's report id, step, attempts, last error."""
    with fail():
        r = _reports().get(report_id)
    if as_json:
        print(json.dumps({k: r[k] for k in STATUS_KEYS}))
        return
    out.print(f"report {r['id']}: {_outcome(r)}", highlight=False)
    if r["status"] == "submitted" and r["next_attempt_at"]:
        out.print(f"  next attempt {_when(r['next_attempt_at'])} UTC")
    for x in r["files"]:
        state = "described" if x["described_at"] else "uploaded" if x["file_id"] else "not uploaded"
        out.print(f"  file {x['id']} {x['filename'] or x['sha256'][:16]}: {state}", highlight=False)


@app.command("retract")
def retract(
    report_id: ReportId,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
) -> None:
    """Withdraw a report: a draft is discarded; an unfinished filing is retracted at NCMEC."""
    with fail():
        r = _reports().retract(report_id, ACTOR, reason)
    out.print(f"report {r['id']}: {r['status']}")


@app.command("filed")
def filed(
    report_id: ReportId,
    external_id: Annotated[str, typer.Argument(help="The reference the authority gave the report.")],
) -> None:
    """Record that a report was filed by hand with an authority that has no API (after `report export`)."""
    with fail():
        r = _reports().mark_filed(report_id, external_id, ACTOR)
    out.print(f"report {r['id']}: {_outcome(r)}", highlight=False)


@app.command("export")
def export(
    report_id: ReportId,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the zip (default: home/exports).")] = None,
) -> None:
    """Write the report's package (zip: files, manifest of hashes, records) and its .sha256 checksum file.

    The package holds decrypted evidence: keep it as such."""
    with fail():
        with err.status(f"exporting report {report_id}…"):
            package = _reports().export(report_id, ACTOR, dest_dir=out_dir)
    print_package(package)


def print_package(package: dict) -> None:
    out.print(f"{package['path']}  ({package['files']} file(s), {package['bytes']} bytes)", highlight=False)
    out.print(f"sha256 {package['sha256']}  (also in {package['path']}.sha256)", highlight=False)


@app.command("check")
def check() -> None:
    """Check the configured CyberTipline URL and credentials (the API's /status)."""
    with fail():
        result = _reports().check_connection()
        where = f"{result['url']} ({result['environment']})"
        if not result["ok"]:
            raise SafeholdError(result["code"] or "cybertip.error", f"{where}: {result['message']}")
    out.print(f"ok: {where}: {result['message']}", highlight=False)


@app.command("stand-in")
def stand_in(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8090,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    username: Annotated[str, typer.Option(help="User name it accepts.")] = "esp",
    password: Annotated[str, typer.Option(help="Password it accepts.")] = "secret",
) -> None:
    """Run a local CyberTipline stand-in to rehearse filing against.

    It checks every document against the schema and answers like NCMEC's API. Point Safehold at it with the
    variables it prints."""
    from safehold.reporting.cybertipline.standin import StandIn

    stand = StandIn(username=username, password=password)
    url = stand.start(host, port)
    out.print(f"CyberTipline stand-in on {url} (Ctrl-C to stop). In the server's environment:", highlight=False)
    print(f"  SAFEHOLD_CYBERTIP_URL={url} SAFEHOLD_CYBERTIP_USERNAME={username} SAFEHOLD_CYBERTIP_PASSWORD={password}")
    out.print("and who NCMEC contacts about reports, e.g. SAFEHOLD_REPORTER_EMAIL=safety@example.org", highlight=False)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    seen: dict[str, str] = {}
    try:
        while not done.wait(0.5):
            for report_id, report in list(stand.reports.items()):
                state = "retracted" if report.retracted else "finished" if report.finished else "opened"
                if seen.get(report_id) != state:
                    seen[report_id] = state
                    out.print(f"report {report_id} {state} ({len(report.files)} file(s))")
    except KeyboardInterrupt:
        pass
    finally:
        stand.stop()
