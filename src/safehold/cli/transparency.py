"""``safehold transparency …``: the overview's figures, transparency reports for a period, and the daily facts
they are computed from (docs/transparency.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from safehold.cli.common import console, err, fail, open_output, progress, services
from safehold.errors import SafeholdError

app = typer.Typer(
    help="Transparency: figures for a period, reports (DSA, 2021/1232, TRUST, HTML, PDF).", no_args_is_help=True
)
ACTOR = "cli"
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ReportId = Annotated[int, typer.Argument(min=1, help="The report's id (safehold transparency reports).")]
out = console()


# ------------------------------------------------------------------ stored reports


@app.command("report")
def report(
    period: Annotated[
        str, typer.Option("--period", "-p", help="2026-H1, 2026-Q3, 2026-11, 2026, 2026-11-01..2026-11-30.")
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="dsa, reg2021-1232, trust, html, pdf, json …")],
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the report here (default: its name, in this folder).")
    ] = None,
) -> None:
    """Generate a transparency report for a period, store it (with the figures it used, so it can be verified
    later) and write it to a file. Small counts are suppressed (SAFEHOLD_TRANSPARENCY_MIN_CELL)."""
    with fail():
        svc = services(load_index=False)
        meta = svc.transparency.generate(period, format, ACTOR)
        path = _write(svc, meta, out_file)
    _summary(meta, path)


@app.command("reports")
def reports(
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    as_json: AsJson = False,
) -> None:
    """Stored transparency reports, newest first."""
    with fail():
        page = services(load_index=False).transparency.list(limit=limit, offset=offset)
    if as_json:
        print(json.dumps(page, indent=2))
        return
    table = Table("id", "period", "format", "created", "by", "partial", "sha256", title=f"{page['total']} report(s)")
    for r in page["reports"]:
        partial = "partial" if r["partial"] else ""
        table.add_row(
            str(r["id"]), r["period"]["label"], r["format"], r["created_at"], r["created_by"], partial,
            r["content_sha256"][:16],
        )  # fmt: skip
    out.print(table)


@app.command("show")
def show(report_id: ReportId, as_json: AsJson = False) -> None:
    """One stored report's metadata: period, format, as_of, threshold, digests."""
    with fail():
        meta = services(load_index=False).transparency.get(report_id)
    if as_json:
        print(json.dumps(meta, indent=2))
        return
    for key, value in meta.items():
        print(f"{key}\t{value['label'] if key == 'period' else value}")


@app.command("download")
def download(
    report_id: ReportId,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Write it here ('-': standard output).")],
) -> None:
    """Write a stored report's bytes, exactly as published, to a file."""
    with fail():
        svc = services(load_index=False)
        path = _write(svc, svc.transparency.get(report_id), out_file)
    if str(path) != "-":
        err.print(f"wrote {path}")


@app.command("verify")
def verify(report_id: ReportId, as_json: AsJson = False) -> None:
    """Recompute a stored report's figures from the records now (same period, same as_of) and re-render it:
    which figures changed since, and whether its bytes reproduce. Exit status 1 when anything differs."""
    with fail():
        result = services(load_index=False).transparency.verify(report_id)
    figures, rendering = result["figures"], result["rendering"]
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("figures\t" + ("match the records" if figures["match"] else "differ from the records now"))
        for d in figures["differences"]:
            print(f"  {d['figure']}\tstored rows {d['stored_rows']}\tnow {d['current_rows']}")
        if figures["definitions_version"] != figures["current_definitions_version"]:
            print(
                f"  the definitions changed: version {figures['definitions_version']} then, "
                f"{figures['current_definitions_version']} now"
            )
        print("content\t" + ("intact" if rendering["content_intact"] else "ALTERED: its SHA-256 does not match"))
        print("rendering\t" + ("reproduced byte for byte" if rendering["reproduced"] else "not reproduced"))
        if rendering["note"]:
            print(f"  {rendering['note']}")
    if not (figures["match"] and rendering["reproduced"]):
        raise typer.Exit(1)


def _write(svc, meta: dict, path: Path | None) -> Path:
    path = path or Path(meta["filename"])
    _, content = svc.transparency.content(meta["id"])
    with open_output(path) as f:
        f.write(content)
    return path


def _summary(meta: dict, path: Path) -> None:
    print(f"id\t{meta['id']}")
    print(f"sha256\t{meta['content_sha256']}")
    print(f"path\t{path}")
    if meta["partial"]:
        err.print(f"note: the period {meta['period']['label']} has not ended: the report is marked partial.")


# ------------------------------------------------------------------ figures and the daily facts


@app.command("figures")
def figures(
    period: Annotated[str, typer.Option("--period", "-p", help="2026-H1, 2026-11, last-30d …")] = "last-30d",
    published: Annotated[
        bool, typer.Option("--published", help="Small counts suppressed, as a report publishes them.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Every figure for a period, a table each (the numbers of the overview; --published: of a report)."""
    from safehold.transparency.periods import parse_period
    from safehold.transparency.privacy import suppress

    with fail():
        svc = services(load_index=False)
        found = svc.transparency_facts.figures(parse_period(period), {})
        if published:
            found = suppress(found, svc.settings.transparency_min_cell)
    if as_json:
        print(json.dumps(found.record(), indent=2))
        return
    out.print(f"{found.period.label()}, as of {found.as_of.isoformat(timespec='seconds')}")
    for key, figure in found.figures.items():
        out.print(Text(f"\n{figure.spec.title} ({key})", style="bold"))  # a title above, never wrapped to the table
        table = Table(*figure.spec.columns)
        for row in figure.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        out.print(table)
        if figure.note or not figure.rows:
            out.print(Text(figure.note or "no rows"))


@app.command("refresh")
def refresh() -> None:
    """Roll up the daily facts of the days whose records changed since the last refresh."""
    with fail():
        facts = services(load_index=False).transparency_facts
        result = facts.refresh()
    _print_facts(result, facts)


@app.command("rebuild")
def rebuild(
    from_day: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD); default: the first record.")
    ] = None,
    to_day: Annotated[str | None, typer.Option("--to", help="Last day, included (YYYY-MM-DD); default: today.")] = None,
) -> None:
    """Roll up the daily facts again from the records, for every day in a range (after a definitions change, or a
    restore), with a progress bar."""
    with fail():
        start, end = _day(from_day, "--from"), _day(to_day, "--to")
        if start and end and end < start:
            raise SafeholdError("cli.usage", "--to is before --from.")
        facts = services(load_index=False).transparency_facts
        with progress(transient=False) as bar:
            task = bar.add_task("rolling up days", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = facts.rebuild(start, end, advance)
    _print_facts(result, facts)


def _day(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SafeholdError("cli.usage", f"{option} is a day, YYYY-MM-DD (not {text[:40]!r}).") from None


def _print_facts(result, facts) -> None:
    """What refresh or rebuild answered, then the engine's status."""
    status = facts.status() if callable(getattr(facts, "status", None)) else None
    for what in (result, status):
        if isinstance(what, dict):
            for key, value in what.items():
                print(f"{key}\t{value}")
        elif what is not None:
            print(what)
