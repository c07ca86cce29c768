"""``safehold bank …``: the same bank operations as ``/v1/banks``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import collect_files, console, err, fail, open_input, open_output, progress, services
from safehold.cli.common import problem as problem_text
from safehold.cli.scan import hash_paths
from safehold.errors import SafeholdError

app = typer.Typer(help="Hash banks: create, configure, fill, export.", no_args_is_help=True)
out = console()

Bank = Annotated[str, typer.Argument(help="Bank name.")]
Category = Annotated[str | None, typer.Option(help="A1, A2, B1, B2 or a slug.")]
Source = Annotated[str | None, typer.Option(help="Where the hashes come from (e.g. ncmec, iwf, own).")]
Note = Annotated[str | None, typer.Option(help="Free-text note kept with each entry.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Thresholds = Annotated[
    list[str] | None,
    typer.Option(
        "--threshold",
        help="Match threshold: TYPE=N for a signal type (e.g. photodna=1800, repeatable; TYPE=default drops the "
        "bank's own), or a bare N for PDQ (0-63). Default: each type's default (PDQ 31).",
    ),
]
OnMatch = Annotated[
    str | None,
    typer.Option(help="none, case (open a case for review) or auto (also run auto policies). Default: by kind."),
]


def _svc():
    return services(load_index=False)


def _bank_table(banks) -> Table:
    table = Table("name", "kind", "on match", "thresholds", "dihedral", "enabled", "entries", "enabled entries")
    for b in banks:
        table.add_row(
            b.name,
            b.kind,
            b.on_match,
            ", ".join(f"{t}={n}" for t, n in sorted({"pdq": b.pdq_threshold, **b.thresholds}.items())),
            "yes" if b.dihedral else "no",
            "yes" if b.enabled else "no",
            str(b.entries),
            str(b.enabled_entries),
        )
    return table


@app.command("create")
def create(
    name: Bank,
    kind: Annotated[str, typer.Option(help="block (matches are hits) or allow (known false positives).")] = "block",
    threshold: Thresholds = None,
    dihedral: Annotated[bool, typer.Option(help="Also match rotated and flipped copies.")] = False,
    description: Annotated[str, typer.Option(help="What the bank holds.")] = "",
    on_match: OnMatch = None,
) -> None:
    """Create a bank."""
    from safehold.banks.service import parse_thresholds

    with fail():
        pdq, by_type = parse_thresholds(threshold)
        b = _svc().banks.create(
            name,
            kind=kind,
            pdq_threshold=pdq,
            thresholds=by_type,
            dihedral=dihedral,
            on_match=on_match,
            description=description,
            created_by="cli",
        )
    out.print(f"created {b.kind} bank [bold]{b.name}[/] (PDQ threshold {b.pdq_threshold}, on match: {b.on_match})")


@app.command("list")
def list_banks(as_json: AsJson = False) -> None:
    """List banks with entry counts."""
    with fail():
        banks = _svc().banks.list()
    if as_json:
        print(json.dumps([b.__dict__ for b in banks]))
    else:
        out.print(_bank_table(banks))


@app.command("show")
def show(name: Bank, as_json: AsJson = False) -> None:
    """Show one bank."""
    with fail():
        b = _svc().banks.get(name)
    print(json.dumps(b.__dict__)) if as_json else out.print(_bank_table([b]))


@app.command("rename")
def rename(name: Bank, new_name: Annotated[str, typer.Argument(help="New name.")]) -> None:
    """Rename a bank."""
    with fail():
        _svc().banks.update(name, new_name=new_name, actor="cli")
    out.print(f"renamed {name} → {new_name}")


@app.command("set")
def configure(
    name: Bank,
    kind: Annotated[str | None, typer.Option(help="block or allow.")] = None,
    threshold: Thresholds = None,
    dihedral: Annotated[bool | None, typer.Option("--dihedral/--no-dihedral")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    on_match: OnMatch = None,
) -> None:
    """Change a bank's settings."""
    from safehold.banks.service import parse_thresholds

    with fail():
        pdq, by_type = parse_thresholds(threshold)
        b = _svc().banks.update(
            name,
            kind=kind,
            on_match=on_match,
            pdq_threshold=pdq,
            thresholds=by_type,
            dihedral=dihedral,
            enabled=enabled,
            description=description,
            actor="cli",
        )
    out.print(_bank_table([b]))


@app.command("delete")
def delete(name: Bank, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a bank and all its entries."""
    if not yes:
        typer.confirm(f"Delete bank {name} and all its entries?", abort=True)
    with fail():
        n = _svc().banks.delete(name, actor="cli")
    out.print(f"deleted {name} ({n} entries)")


@app.command("add")
def add_files(
    name: Bank,
    paths: Annotated[list[Path], typer.Argument(help="Images or videos, or folders of them.")],
    category: Category = None,
    source: Source = "own",
    note: Note = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Hashing processes (0: one per core).")] = 0,
) -> None:
    """Hash images/videos and add their perceptual hash and MD5 to a bank (one entry id per file name)."""
    from safehold.banks.service import BANK_PDQ_MODE, file_records

    with fail():
        svc = _svc()
        svc.banks.get(name)
        files = collect_files(paths)
    records, skipped = [], 0
    for path, hashed, exc in hash_paths(files, workers=workers, label="hashing", pdq_mode=BANK_PDQ_MODE):
        try:
            if exc is not None:
                raise exc
            records.extend(
                file_records(
                    hashed,
                    filename=Path(path).name,  # never the operator's own path: only the name is kept
                    source=source,
                    category=category,
                    note=note,
                    external_id=Path(path).name[:128],
                )
            )
        except SafeholdError as problem:
            skipped += 1
            err.print(problem_text(problem, f"skipped {path}: "))
    with fail():
        # One transaction per batch (SAFEHOLD_IMPORT_BATCH_ROWS), so a large folder never blocks other writers.
        step = svc.settings.import_batch_rows
        added = duplicates = 0
        for i in range(0, max(len(records), 1), step):
            report = svc.banks.add_records(name, records[i : i + step], added_by="cli")
            added, duplicates = added + report.added, duplicates + report.duplicates
    out.print(f"{name}: {added} entries added, {duplicates} already there, {skipped} file(s) skipped")
    if skipped:
        raise typer.Exit(2)


@app.command("add-hash")
def add_hash(
    name: Bank,
    signal_type: Annotated[str, typer.Argument(help="pdq, md5, sha1, sha256, vpdq, url, …")],
    value: Annotated[str, typer.Argument(help="The hash value; for url, the URL itself or its 64-hex SHA-256.")],
    category: Category = None,
    source: Source = None,
    external_id: Annotated[str | None, typer.Option(help="The entry's id in its source list.")] = None,
    note: Note = None,
) -> None:
    """Add one raw hash (or a URL, to a URL bank) to a bank."""
    with fail():
        e = _svc().banks.add_hash(
            name,
            signal_type,
            value,
            category=category,
            source=source,
            external_id=external_id,
            note=note,
            added_by="cli",
        )
    out.print(f"entry {e['id']}: {e['signal_type']} {e['value']}", highlight=False)


@app.command("import")
def import_file(
    name: Bank,
    file: Annotated[Path, typer.Argument(help="CSV, plain hash list or NCMEC XML file; '-' for stdin.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, csv, list or ncmec-xml.")] = "auto",
    signal_type: Annotated[str | None, typer.Option(help="Signal type of a plain hash list.")] = None,
    source: Source = None,
    skip_invalid: Annotated[bool, typer.Option(help="Import valid rows even if some are invalid.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Check the file; write nothing.")] = False,
) -> None:
    """Bulk-import hashes. All or nothing unless --skip-invalid; problems are listed with line numbers.

    Exits 2 when any row is refused and nothing was imported, and after a --dry-run that found any problem, so
    a script can check a file before importing it."""
    with fail():
        svc = _svc()
        stream = sys.stdin.buffer if str(file) == "-" else open_input(file)
    try:
        with progress() as bar, fail():
            task = bar.add_task(f"checking {file}", total=None)

            def phase(p: str) -> None:
                bar.reset(task, description=f"{p} {'into ' + name if p != 'checking' else file}", total=None)

            report = svc.banks.import_stream(
                name,
                stream,
                fmt=fmt,
                default_signal_type=signal_type,
                source=source,
                skip_invalid=skip_invalid,
                dry_run=dry_run,
                added_by="cli",
                progress=lambda n: bar.advance(task, n),
                phase=phase,
                filename=None if str(file) == "-" else Path(file).name,
            )
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if report.resumed:
        out.print(f"resumed import job {report.job}: {report.resumed_at} of {report.read} records were already written")
    for issue in report.issues[:20]:
        where = f"line {issue.line}: " if issue.line else ""
        err.print(problem_text(issue, f"  {where}"))
    if len(report.issues) > 20:
        err.print(f"  … and {len(report.issues) - 20} more")
    added = f"{report.added} would be added" if dry_run else f"{report.added} added"
    state = "dry run, nothing written" if dry_run else ("imported" if report.committed else "NOT imported")
    out.print(
        f"{name}: {report.read} read, {added}, {report.duplicates} duplicates, {report.invalid} invalid — {state}"
    )
    if report.invalid and (dry_run or not report.committed):
        raise typer.Exit(2)


@app.command("export")
def export(
    name: Bank,
    file: Annotated[Path, typer.Argument(help="Output file; '-' for stdout.")] = Path("-"),
    fmt: Annotated[str, typer.Option("--format", help="csv, list or ncmec-xml.")] = "csv",
    signal_type: Annotated[str | None, typer.Option(help="Only this signal type (required for list).")] = None,
) -> None:
    """Export a bank in a format `bank import` reads back."""
    with fail():
        svc = _svc()
        if fmt == "list" and not signal_type:
            raise SafeholdError("export.signal_type_required", "A plain hash list needs --signal-type.")
        with open_output(file) as f:
            n = svc.banks.export(name, f, fmt=fmt, signal_type=signal_type, actor="cli")
    err.print(f"exported {n} entries from {name}")


def _set_enabled(name: str, target: str, signal_type: str | None, enabled: bool) -> None:
    with fail():
        svc = _svc()
        if signal_type:
            e = svc.banks.set_enabled_by_value(name, signal_type, target, enabled, actor="cli")
        elif target.isdigit():
            e = svc.banks.get_entry(int(target))
            if e["bank"] != name:
                raise SafeholdError("entry.not_found", f"Entry {target} is not in bank {name!r}.", status=404)
            e = svc.banks.set_entry_enabled(int(target), enabled, actor="cli")
        else:
            raise SafeholdError("cli.usage", "Give an entry id, or a hash value with --signal-type.")
    out.print(f"entry {e['id']} {'enabled' if enabled else 'disabled'}")


Target = Annotated[str, typer.Argument(help="Entry id, or a hash value with --signal-type.")]
SignalOpt = Annotated[str | None, typer.Option(help="Signal type when TARGET is a hash value.")]


@app.command("disable")
def disable(name: Bank, target: Target, signal_type: SignalOpt = None) -> None:
    """Stop an entry matching without deleting it."""
    _set_enabled(name, target, signal_type, False)


@app.command("enable")
def enable(name: Bank, target: Target, signal_type: SignalOpt = None) -> None:
    """Let a disabled entry match again."""
    _set_enabled(name, target, signal_type, True)


@app.command("entries")
def entries(
    name: Bank,
    signal_type: Annotated[str | None, typer.Option(help="Only this signal type.")] = None,
    after_id: Annotated[int, typer.Option(help="Start after this entry id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 50,
    as_json: AsJson = False,
) -> None:
    """List a bank's entries."""
    with fail():
        rows = _svc().banks.entries(name, signal_type=signal_type, after_id=after_id, limit=limit)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("id", "type", "value", "category", "source", "external id", "enabled")
    for r in rows:
        v = r["value"] if len(r["value"]) <= 64 else r["value"][:61] + "..."
        table.add_row(
            str(r["id"]),
            r["signal_type"],
            v,
            r["category"] or "",
            r["source"] or "",
            r["external_id"] or "",
            "yes" if r["enabled"] else "no",
        )
    out.print(table)


# ------------------------------------------------------------ false-positive controls (docs/sharing.md)

quarantine_app = typer.Typer(help="Entries quarantined for matching far more than their peers.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


def _rate(r: dict) -> str:
    rate = r["false_positive_rate"]
    return "" if rate is None else f"{rate:.0%} of {r['true_positives'] + r['false_positives']}"


@app.command("stats")
def stats(
    entry: Annotated[int | None, typer.Option(help="One entry's statistics (default: per bank and source).")] = None,
    days: Annotated[int, typer.Option(help="Days of statistics, today included (1-366).")] = 30,
    as_json: AsJson = False,
) -> None:
    """Match statistics and false-positive rates, per bank and source or for one entry."""
    with fail():
        svc = _svc()
        data = svc.quarantine.entry_stats(entry, days) if entry is not None else svc.quarantine.source_stats(days)
    if as_json:
        print(json.dumps(data))
        return
    if entry is not None:
        q = data["entry"]["quarantine"]
        out.print(f"entry {entry}: {data['matches']} matches (first {data['first_match_at']}, last "
                  f"{data['last_match_at']}), {data['window_matches']} in the last {data['window_hours']} h; "
                  f"false positives: {_rate(data) or 'no reviewed case yet'}")  # fmt: skip
        if q:
            out.print(f"quarantined {q['at']}: {q['reason'].get('message', '')}")
        table = Table("day", "matches")
        for d in data["per_day"]:
            table.add_row(d["day"], str(d["matches"]))
        out.print(table)
        return
    table = Table("bank", "source", "entries", "quarantined", f"matches ({days} d)", "in window", "TP", "FP", "FP rate")
    for g in data:
        counts = ("entries", "quarantined", "matches", "window_matches", "true_positives", "false_positives")
        table.add_row(g["bank"], g["source"] or "", *(str(g[c]) for c in counts), _rate(g))
    out.print(table)


@quarantine_app.command("list")
def quarantine_list(as_json: AsJson = False) -> None:
    """The quarantined entries, most recent first, with why."""
    with fail():
        rows = _svc().quarantine.quarantined()
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("id", "bank", "type", "source", "since", "why")
    for r in rows:
        q = r["quarantine"]
        why = q["reason"].get("message", "")
        table.add_row(str(r["id"]), r["bank"], r["signal_type"], r["source"] or "", q["at"], why)
    out.print(table)


@quarantine_app.command("release")
def quarantine_release(entry_id: Annotated[int, typer.Argument(help="The quarantined entry's id.")]) -> None:
    """Let a quarantined entry act automatically again (audited; not quarantined again for one window)."""
    with fail():
        _svc().quarantine.release(entry_id, "cli")
    out.print(f"entry {entry_id} released")
