"""The ``safehold`` command. Every command calls the same services as the API; none holds business logic.

Errors print as ``error [code]: message`` on stderr and exit with status 2 (1 is left for unexpected failures).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold import __version__, logs
from safehold.cli import actions as action_cmds
from safehold.cli import ages as age_cmds
from safehold.cli import audit as audit_cmds
from safehold.cli import backup as backup_cmds
from safehold.cli import banks as bank_cmds
from safehold.cli import classifiers as classifier_cmds
from safehold.cli import conversations as conversation_cmds
from safehold.cli import evidence as evidence_cmds
from safehold.cli import exchanges as exchange_cmds
from safehold.cli import feedback as feedback_cmds
from safehold.cli import keys as keys_cmds
from safehold.cli import live as live_cmds
from safehold.cli import media as media_cmds
from safehold.cli import peer as peer_cmds
from safehold.cli import prompts as prompt_cmds
from safehold.cli import reports as report_cmds
from safehold.cli import rules as rule_cmds
from safehold.cli import safety as safety_cmds
from safehold.cli import scan as scan_cmds
from safehold.cli import screening as screening_cmds
from safehold.cli import seen as seen_cmds
from safehold.cli import terms as term_cmds
from safehold.cli import text as text_cmds
from safehold.cli import transparency as transparency_cmds
from safehold.cli import user_reports as user_report_cmds
from safehold.cli import users as user_cmds
from safehold.cli import workers as worker_cmds
from safehold.cli.common import console, fail, program, services
from safehold.errors import SafeholdError
from safehold.home import database_url, explain, masked_url, owner_only, resolve_home

app = typer.Typer(
    name="safehold",
    help="Safehold: child-safety infrastructure. Hash, bank, scan, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
key_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(key_app, name="apikey")
app.add_typer(bank_cmds.app, name="bank")
app.add_typer(live_cmds.app, name="live")
app.add_typer(audit_cmds.app, name="audit")
app.add_typer(backup_cmds.app, name="backup")
app.add_typer(keys_cmds.app, name="keys")
app.add_typer(action_cmds.webhook_app, name="webhook")
app.add_typer(action_cmds.delivery_app, name="delivery")
app.add_typer(action_cmds.policy_app, name="policy")
app.add_typer(user_cmds.app, name="user")
app.add_typer(report_cmds.app, name="report")
app.add_typer(evidence_cmds.app, name="evidence")
app.add_typer(text_cmds.app, name="text")
app.add_typer(conversation_cmds.app, name="conversation")
app.add_typer(feedback_cmds.app, name="feedback")
app.add_typer(term_cmds.app, name="terms")
app.add_typer(rule_cmds.app, name="rules")
app.add_typer(user_report_cmds.app, name="user-reports")
app.add_typer(user_report_cmds.appeals_app, name="appeals")
app.add_typer(exchange_cmds.app, name="exchange")

app.add_typer(peer_cmds.app, name="peer")

app.add_typer(seen_cmds.app, name="seen")
app.add_typer(classifier_cmds.app, name="classifier")
app.add_typer(prompt_cmds.app, name="prompts")
app.add_typer(media_cmds.app, name="media")
app.add_typer(screening_cmds.app, name="screening")
app.add_typer(age_cmds.app, name="age")
app.add_typer(safety_cmds.contact_app, name="contact")
app.add_typer(transparency_cmds.app, name="transparency")
app.command("hash")(scan_cmds.hash_files)
app.command("scan")(scan_cmds.scan_paths)
app.command("worker")(worker_cmds.worker)
app.command("beat")(worker_cmds.beat)

out = console()


def _print_store(home: Path, url: str) -> None:
    """Which store this process uses and why, so a user never wonders where their banks and keys went."""
    state = "" if home.is_dir() else "; does not exist yet: `safehold db upgrade` creates it"
    out.print(f"home      {home}  ({explain(home)}{state})", markup=False, highlight=False, soft_wrap=True)
    out.print(f"database  {masked_url(url)}", markup=False, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    """The version and the store in use, from the environment alone (no settings or database loaded: fast)."""
    if value:
        home = resolve_home().path
        out.print(f"safehold {__version__}", highlight=False)
        _print_store(home, database_url(home))
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    try:
        fmt = logs.log_format()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    logs.configure(logging.INFO if verbose else logging.WARNING, fmt)
    owner_only()  # keys, vault, evidence, exports, snapshots: owner-only, whatever the caller's umask


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="API processes sharing the port (default: SAFEHOLD_WEB_WORKERS, 1)."),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) and the console; creates the store on first start."""
    import uvicorn

    from safehold.runtime import tune_allocator

    owner_only()
    tune_allocator()  # before any thread starts: decoded images' memory goes back to the system when freed

    from safehold.app import create_app
    from safehold.config import get_settings
    from safehold.services import Services

    with fail():
        sock = _listen(host, port)
        processes = workers or get_settings().web_workers
        # With several processes this one only prepares the store and the index snapshot: it builds no more.
        svc = services(create=True) if processes == 1 else Services(create=True, lazy=True)
    has_keys = bool(svc.apikeys.list())
    has_banks = bool(svc.banks.list())
    out.print(f"[bold]Safehold {__version__}[/]")
    _print_store(svc.settings.home, svc.db.url)
    if not has_keys or not has_banks:
        out.print("Getting started (in another terminal):")
        if not has_keys:
            out.print(f"  {program()} apikey create --name me --role admin")
        if not has_banks:
            out.print(f"  {program()} bank create known-images")
            out.print(f"  {program()} bank add known-images path/to/images/")
        out.print(f"  {program()} scan path/to/uploads/")
        out.print("A walk-through: docs/quickstart.md")
    out.print(f"API and console on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)", soft_wrap=True)
    # JSON logs: uvicorn's own records go through the root handler (safehold.logs) instead of its text formatter.
    json_logs = svc.settings.log_format == "json"
    if json_logs:
        logging.getLogger("uvicorn").setLevel(logging.INFO)
    options = {"host": host, "port": port, "log_level": "info", "access_log": False}
    options.update({"log_config": None} if json_logs else {})
    if processes > 1:
        svc.index.save_snapshot()  # each process starts from it instead of rebuilding the index from the database
        svc.close()
        del svc  # the index is not needed here: the processes load their own
        _serve_processes(sock, processes, options)
        return
    threading.Thread(target=svc.scans.isolation.start, name="fork-server", daemon=True).start()
    uvicorn.Server(uvicorn.Config(create_app(svc, serving=True), **options)).run(sockets=[sock])


#: Seconds a process may take to answer the supervisor's ping, and a replacement (SIGHUP) to start serving: a
#: process loading a large index from its snapshot and the detectors takes a while, and a long request holding the
#: interpreter may delay the answering thread; uvicorn's 5 s would have such processes killed as hung.
HEALTHCHECK_SECONDS = 30


def _serve_processes(sock: socket.socket, processes: int, options: dict) -> None:
    """Serve with ``processes`` API processes on the one socket, under uvicorn's own supervisor.

    Uvicorn's supervisor rather than gunicorn: it is already installed and is what serves one process, it hands
    the socket bound here (:func:`_listen`) to every process, pings each and replaces one that died or hangs
    (SIGKILL, out of memory), stops them all gracefully on SIGTERM or Ctrl-C (each finishes its requests in
    flight) and replaces them one by one on SIGHUP; gunicorn would add a dependency and a second configuration for
    the same thing, and runs on no Windows host.

    What must happen once has happened in :func:`serve` before: the store is created and migrated (the processes
    open it without migrating), and the matching index is loaded and snapshotted, so each process starts from the
    snapshot instead of rebuilding it from the database. In the processes the shared background tasks run in one
    of them (``safehold.workers.engine.SharedLock``).
    """
    import gc

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    gc.collect()  # the index this process loaded for the snapshot
    os.environ["SAFEHOLD_WEB_WORKERS"] = str(processes)  # inherited by the processes: their settings read it
    config = uvicorn.Config(
        "safehold.app:process_app",
        factory=True,
        workers=processes,
        timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
        **options,
    )
    Multiprocess(config, sockets=[sock]).run()


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` before anything is announced, so a taken port is a clear error rather than
    a traceback after a banner naming that port. The server then serves on this very socket: no other process
    can take the port in between. Bound as uvicorn would (same family rule, SO_REUSEADDR)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SafeholdError(
                "serve.port_in_use",
                f"Port {port} on {host} is already in use (another Safehold?). "
                f"Choose another: make run PORT={port + 1}, or safehold serve --port {port + 1}.",
            ) from None
        raise SafeholdError("serve.cannot_listen", f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
    return sock


@app.command("warm-up")
def warm_up() -> None:
    """Compile the hashing and matching kernels now (`make` does it at install; after `pip install`, run this
    once so that no scan pays for it)."""
    from safehold import warmup

    warmup.main()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the store (home and database) if missing and apply pending migrations."""
    from safehold.config import get_settings
    from safehold.store import migrate
    from safehold.store.db import open_database

    with fail():
        settings = get_settings()
        db = open_database(settings, create=True)
        out.print(f"database at revision {migrate.current_revision(db)}")
    _print_store(settings.home, db.url)


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision of the configured database."""
    from safehold.config import get_settings
    from safehold.store import migrate
    from safehold.store.db import Database, require_store

    settings = get_settings()
    with fail():
        require_store(settings)
        db = Database(settings.effective_database_url)
        cur, head = migrate.current_revision(db), migrate.head_revision()
    out.print(f"current {cur or '(empty)'} · latest {head} · {'up to date' if cur == head else 'upgrade needed'}")


@key_app.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="admin, senior_reviewer, reviewer, auditor, legal, platform or peer.")],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    with fail():
        created = services(load_index=False).apikeys.create(name, role, created_by="cli")
    if as_json:
        print(json.dumps({"name": created.name, "role": created.role, "prefix": created.prefix, "key": created.token}))
        return
    out.print(f"API key for [bold]{created.name}[/] (role {created.role}); it is shown only this once:")
    print(created.token)
    out.print(
        f"Use it as: curl -H 'Authorization: Bearer {created.token}' http://127.0.0.1:8080/v1/banks",
        style="dim",
        soft_wrap=True,
    )


@key_app.command("list")
def apikey_list() -> None:
    """List API keys (names, roles, prefixes; never secrets)."""
    with fail():
        rows = services(load_index=False).apikeys.list()
    table = Table("prefix", "name", "role", "created", "last used", "revoked")
    for k in rows:
        table.add_row(
            k.prefix,
            k.name,
            k.role,
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "-",
            "yes" if k.revoked_at else "",
        )
    out.print(table)


@key_app.command("revoke")
def apikey_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (see `apikey list`).")],
) -> None:
    """Revoke an API key at once."""
    with fail():
        k = services(load_index=False).apikeys.revoke(prefix, actor="cli")
    out.print(f"revoked {k.prefix} ({k.name})")
