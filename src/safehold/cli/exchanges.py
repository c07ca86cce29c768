"""``safehold exchange …``: hash exchanges (the same operations as ``/v1/exchanges``; docs/sharing.md).

Credentials come from ``--credential KEY=VALUE`` or a JSON file (``--credentials-file``); they are sealed at once
and never printed, not even by ``status --json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from safehold.cli.common import console, err, fail, services
from safehold.cli.configuring import (
    CredentialOpt,
    CredentialsFile,
    SettingOpt,
    SettingsFile,
    credentials_from,
    settings_from,
    stop_on_sigterm,
    write_stand_in_files,
)

app = typer.Typer(help="Hash exchanges: banks kept in sync with a source (NCMEC, a feed, a peer, ...).",
                  no_args_is_help=True)  # fmt: skip
out = console()

Name = Annotated[str, typer.Argument(help="Exchange name (also the source of the entries it adds).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Every = Annotated[int | None, typer.Option(help="Seconds between scheduled fetches (default: the type's).")]


def _svc():
    return services(load_index=False)


def _print_status(s: dict) -> None:
    out.print(f"[bold]{s['name']}[/] ({s['title']}) → bank {s['bank']}", highlight=False)
    out.print(f"  enabled {'yes' if s['enabled'] else 'no'}, every {s['every_seconds']} s, "
              f"next fetch {s['next_fetch_at'] or '—'}{' (fetching now)' if s['fetching'] else ''}",
              highlight=False)  # fmt: skip
    out.print(f"  settings {json.dumps(s['settings'], sort_keys=True)}", markup=False, highlight=False)
    out.print(f"  credentials {'set (sealed)' if s['has_credentials'] else 'none'}", highlight=False)
    t = s["totals"]
    out.print(f"  totals: {t['fetched']} fetched, {t['added']} added, {t['removed']} removed, "
              f"{t['malformed']} malformed", highlight=False)  # fmt: skip
    if s["unknown_types"]:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(s["unknown_types"].items()))
        out.print(f"  hashes of types not installed (kept): {kinds}", markup=False, highlight=False)
    out.print(f"  last success {s['last_success_at'] or '—'}", highlight=False)
    if s["last_error"]:
        e = s["last_error"]
        out.print(f"  last error {e['at']} [{e['code']}]: {e['message']}", markup=False, highlight=False)


@app.command("add")
def add(
    name: Name,
    type_name: Annotated[str, typer.Option("--type", help="Exchange type (see `safehold exchange types`).")],
    bank: Annotated[str, typer.Option(help="The bank it fills.")],
    setting: SettingOpt = None,
    settings_file: SettingsFile = None,
    credential: CredentialOpt = None,
    credentials_file: CredentialsFile = None,
    every: Every = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Configure it without fetching yet.")] = False,
) -> None:
    """Configure an exchange feeding a bank; it fetches on its schedule (or now: `safehold exchange fetch`)."""
    with fail():
        status = _svc().exchanges.create(
            name, type_name, bank, settings_from(setting, settings_file) or {},
            credentials_from(credential, credentials_file), every_seconds=every, enabled=not disabled, actor="cli",
        )  # fmt: skip
    _print_status(status)


@app.command("update")
def update(
    name: Name,
    setting: SettingOpt = None,
    settings_file: SettingsFile = None,
    credential: CredentialOpt = None,
    credentials_file: CredentialsFile = None,
    every: Every = None,
) -> None:
    """Replace an exchange's settings or credentials (each whole), or change its period."""
    with fail():
        status = _svc().exchanges.update(
            name, settings=settings_from(setting, settings_file),
            credentials=credentials_from(credential, credentials_file), every_seconds=every, actor="cli",
        )  # fmt: skip
    _print_status(status)


@app.command("list")
def list_exchanges(as_json: AsJson = False) -> None:
    """Every exchange with its state."""
    with fail():
        found = _svc().exchanges.list()
    if as_json:
        out.print_json(json.dumps(found))
        return
    table = Table("name", "type", "bank", "enabled", "every", "last success", "added", "removed", "last error")
    for s in found:
        error = s["last_error"]["code"] if s["last_error"] else ""
        totals = s["totals"]
        table.add_row(s["name"], s["type"], s["bank"], "yes" if s["enabled"] else "no", f"{s['every_seconds']} s",
                      s["last_success_at"] or "—", str(totals["added"]), str(totals["removed"]), error)  # fmt: skip
    out.print(table)


@app.command("status")
def status(name: Name, as_json: AsJson = False) -> None:
    """An exchange's settings, schedule, totals and last error (never its credentials)."""
    with fail():
        s = _svc().exchanges.get(name)
    if as_json:
        out.print_json(json.dumps(s))
    else:
        _print_status(s)


@app.command("types")
def types(as_json: AsJson = False) -> None:
    """The exchange types installed, with their settings and credential fields."""
    from safehold.sharing.service import types as exchange_types

    with fail():
        found = exchange_types()
    if as_json:
        out.print_json(json.dumps(found))
        return
    for t in found:
        fields = ", ".join(t["settings"].get("properties", {}))
        creds = ", ".join((t["credentials"] or {}).get("properties", {})) or "none"
        out.print(f"[bold]{t['name']}[/]: {t['title']} — settings: {fields or 'none'}; credentials: {creds}",
                  highlight=False)  # fmt: skip


@app.command("fetch")
def fetch(name: Name) -> None:
    """Fetch now, from where the last round stopped (shows progress; exits 2 on an error, which is also stored
    in the exchange's status)."""
    with fail():
        svc = _svc()
        svc.exchanges.get(name)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                      transient=True, disable=not err.is_terminal) as bar:  # fmt: skip
            task = bar.add_task(f"fetching {name}", total=None)

            def show(f: dict) -> None:
                bar.update(task, description=f"fetching {name}: {f['fetched']} read, {f['added']} added, "
                           f"{f['removed']} removed, {f['batches']} batches")  # fmt: skip

            report = svc.exchanges.fetch_once(name, progress=show, actor="cli")
    out.print(
        f"{name}: {report['fetched']} read, {report['added']} added, {report['removed']} removed, "
        f"{report['malformed']} malformed, {report['unknown']} of unknown types, in {report['seconds']} s",
        highlight=False,
    )
    for p in report["problems"]:
        err.print(f"  {p}", markup=False, highlight=False)


@app.command("disable")
def disable(name: Name) -> None:
    """Stop fetching (its entries stay in the bank)."""
    with fail():
        _svc().exchanges.disable(name, actor="cli")
    out.print(f"{name}: disabled")


@app.command("enable")
def enable(name: Name) -> None:
    """Fetch on the schedule again (the next round is due at once)."""
    with fail():
        _svc().exchanges.enable(name, actor="cli")
    out.print(f"{name}: enabled")


@app.command("remove")
def remove(name: Name, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Forget an exchange and its checkpoint; the entries it added stay in the bank."""
    if not yes:
        typer.confirm(f"Remove exchange {name}? (its entries stay in the bank)", abort=True)
    with fail():
        _svc().exchanges.delete(name, actor="cli")
    out.print(f"{name}: removed")


@app.command("stand-in")
def stand_in(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="ncmec, stopncii, threatexchange or tat.")],
    hashes: Annotated[
        list[str] | None,
        typer.Option(
            "--hash",
            help="md5=VALUE or pdq=VALUE it also lists (e.g. of a harmless test image, "
            "from `safehold hash`); repeatable.",
        ),
    ] = None,
    entries: Annotated[int, typer.Option(min=0, max=1000, help="Synthetic entries (an MD5 and a PDQ each).")] = 3,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Where to write TYPE-settings.json and TYPE-credentials.json for `exchange add`."),
    ] = Path("."),
) -> None:
    """Run a local stand-in of an exchange's source to rehearse against (fetching, matching, feedback).

    It speaks the source's protocol with a few synthetic, benign entries; it prints the feedback it receives."""
    from safehold.sharing import rehearsal

    with fail():
        given = [rehearsal.parse_hash(h) for h in hashes or []]
        stand = rehearsal.start(type_name, host=host, port=port, entries=entries, given=given)
    try:
        files = write_stand_in_files(folder, type_name, stand.settings, stand.credentials)
        out.print(f"{type_name} stand-in on {stand.url} (Ctrl-C to stop), {entries} synthetic entries and "
                  f"{len(given)} of yours. Point an exchange at it:", highlight=False)  # fmt: skip
        print(f"  safehold exchange add {type_name}-rehearsal --type {type_name} --bank BANK "
              f"--settings-file {files['settings']} --credentials-file {files['credentials']}", flush=True)  # fmt: skip
        done = stop_on_sigterm()
        shown = 0
        while not done.wait(0.5):
            received = stand.feedback()
            for item in received[shown:]:
                print(f"feedback: {json.dumps(item, default=str)}", flush=True)
            shown = len(received)
    except KeyboardInterrupt:
        pass
    finally:
        stand.stop()
