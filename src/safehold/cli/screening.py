"""``safehold screening …``: the external classification services images are sent to off the hash-matching path
(the same operations as ``/v1/screening``; docs/classifiers.md). Credentials come from ``--credential KEY=VALUE``
or a JSON file; they are sealed at once and never printed, not even by ``show --json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, fail, services
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

app = typer.Typer(help="External classification services (Google Content Safety, Safer Predict, Arachnid Shield).",
                  no_args_is_help=True)  # fmt: skip
out = console()

Name = Annotated[str, typer.Argument(help="Service name (also the signal type of the review cases it opens).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Threshold = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help="A score at or above it opens a review case (default: type's).")
]


def _svc():
    return services(load_index=False)


def _print_status(s: dict) -> None:
    out.print(f"[bold]{s['name']}[/] ({s['type']}) enabled {'yes' if s['enabled'] else 'no'}, threshold "
              f"{s['threshold']}{' (set)' if s['threshold_overridden'] else ''}", highlight=False)  # fmt: skip
    out.print(f"  settings {json.dumps(s['settings'], sort_keys=True)}", markup=False, highlight=False)
    out.print(f"  credentials {'set (sealed)' if s['has_credentials'] else 'none'}", highlight=False)
    t, q = s["totals"], s["queue"]
    out.print(f"  totals: {t['sent']} sent, {t['hits']} hits, {t['failed']} failed, {t['skipped']} skipped; "
              f"queue: {q['queued']} waiting, {q['failed']} failed", highlight=False)  # fmt: skip
    out.print(f"  last success {s['last_ok_at'] or '—'}", highlight=False)
    if s["last_error"]:
        e = s["last_error"]
        out.print(f"  last error {e['at']} [{e['code']}]: {e['message']}", markup=False, highlight=False)


@app.command("add")
def add(
    name: Name,
    type_name: Annotated[str, typer.Option("--type", help="Service type (see `safehold screening types`).")],
    setting: SettingOpt = None,
    settings_file: SettingsFile = None,
    credential: CredentialOpt = None,
    credentials_file: CredentialsFile = None,
    threshold: Threshold = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Configure it without queueing images yet.")] = False,
) -> None:
    """Configure a service: from now on, images no bank matched are queued for it."""
    with fail():
        status = _svc().screening.create(
            name, type_name, settings_from(setting, settings_file) or {},
            credentials_from(credential, credentials_file), threshold=threshold, enabled=not disabled, actor="cli",
        )  # fmt: skip
    _print_status(status)


@app.command("update")
def update(
    name: Name,
    setting: SettingOpt = None,
    settings_file: SettingsFile = None,
    credential: CredentialOpt = None,
    credentials_file: CredentialsFile = None,
    threshold: Threshold = None,
    default_threshold: Annotated[bool, typer.Option(help="Go back to the type's own threshold.")] = False,
) -> None:
    """Replace a service's settings or credentials (each whole), or change its threshold."""
    with fail():
        status = _svc().screening.update(
            name, settings=settings_from(setting, settings_file),
            credentials=credentials_from(credential, credentials_file), threshold=threshold,
            clear_threshold=default_threshold, actor="cli",
        )  # fmt: skip
    _print_status(status)


@app.command("list")
def list_services(as_json: AsJson = False) -> None:
    """Every service with its state and queue."""
    with fail():
        svc = _svc()
        found, queue = svc.screening.list(), svc.screening.queue()
    if as_json:
        out.print_json(json.dumps({"services": found, "queue": queue}))
        return
    table = Table("name", "type", "enabled", "threshold", "waiting", "sent", "hits", "failed", "skipped", "last error")
    for s in found:
        t = s["totals"]
        table.add_row(s["name"], s["type"], "yes" if s["enabled"] else "no", str(s["threshold"]),
                      str(s["queue"]["queued"]), str(t["sent"]), str(t["hits"]), str(t["failed"]), str(t["skipped"]),
                      s["last_error"]["code"] if s["last_error"] else "")  # fmt: skip
    out.print(table)
    q = queue
    out.print(f"queue: {q['queued']} jobs ({q['queued_bytes']} bytes) waiting of at most {q['max_jobs']} "
              f"({q['max_bytes']} bytes); {q['failed']} failed", highlight=False)  # fmt: skip


@app.command("show")
def show(name: Name, as_json: AsJson = False) -> None:
    """A service's settings, threshold, counters, queue and last error (never its credentials)."""
    with fail():
        s = _svc().screening.get(name)
    if as_json:
        out.print_json(json.dumps(s))
    else:
        _print_status(s)


@app.command("types")
def types(as_json: AsJson = False) -> None:
    """The service types installed, with their labels and settings and credential fields."""
    from safehold.screening.service import types as service_types

    with fail():
        found = service_types()
    if as_json:
        out.print_json(json.dumps(found))
        return
    for t in found:
        fields = ", ".join(t["settings"].get("properties", {}))
        creds = ", ".join(t["credentials"].get("properties", {})) or "none"
        out.print(f"[bold]{t['type']}[/]: {t['description']} — threshold {t['threshold']}; settings: {fields}; "
                  f"credentials: {creds}", highlight=False)  # fmt: skip


@app.command("enable")
def enable(name: Name) -> None:
    """Queue images for the service again."""
    with fail():
        _print_status(_svc().screening.enable(name, actor="cli"))


@app.command("disable")
def disable(name: Name) -> None:
    """Queue no more images for the service (its queued jobs wait)."""
    with fail():
        _print_status(_svc().screening.disable(name, actor="cli"))


@app.command("remove")
def remove(name: Name) -> None:
    """Forget the service and its queued jobs (the cases it opened stay)."""
    with fail():
        _svc().screening.delete(name, actor="cli")
    out.print(f"{name}: removed")


@app.command("test")
def test(name: Name) -> None:
    """Call the service once with a generated image (nobody's media): proves its URL and credentials."""
    with fail():
        answer = _svc().screening.test(name, actor="cli")
    out.print_json(json.dumps(answer))


@app.command("stand-in")
def stand_in(
    type_name: Annotated[
        str, typer.Argument(metavar="TYPE", help="A service type with a stand-in (google_csai, safer_predict, …).")
    ],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Where to write TYPE-settings.json and TYPE-credentials.json for `screening add`."),
    ] = Path("."),
) -> None:
    """Run a local stand-in of a service to rehearse against: it answers deterministically and sends nothing on."""
    from safehold.screening import rehearsal

    with fail():
        stand = rehearsal.start(type_name, host=host, port=port)
    try:
        files = write_stand_in_files(folder, type_name, stand.settings(), stand.credentials())
        out.print(f"{type_name} stand-in on {stand.url} (Ctrl-C to stop). Point a service at it:", highlight=False)
        print(f"  safehold screening add {type_name}-rehearsal --type {type_name} "
              f"--settings-file {files['settings']} --credentials-file {files['credentials']}", flush=True)  # fmt: skip
        stop_on_sigterm().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stand.stop()
