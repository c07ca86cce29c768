"""``safehold webhook|delivery|policy …``: the same operations as ``/v1/webhooks``, ``/v1/deliveries`` and
``/v1/policies``, plus ``delivery run``, a foreground delivery worker.

A signing secret never goes through the command line, where ``ps`` and shell history would keep it: ``webhook
add`` and ``rotate`` print it once or write it to a file only its owner can read (``--secret-out``), and ``webhook
receive`` reads it from such a file, from ``SAFEHOLD_WEBHOOK_SECRET`` or from a hidden prompt.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from safehold.cli.common import console, err, fail, services
from safehold.errors import SafeholdError

if TYPE_CHECKING:  # the stand-in receiver (http.server) loads only in `webhook receive`
    from safehold.actions.receiver import Delivery

webhook_app = typer.Typer(help="Webhook receivers: where actions are sent.", no_args_is_help=True)
delivery_app = typer.Typer(help="Webhook deliveries: list, retry dead letters, run a worker.", no_args_is_help=True)
policy_app = typer.Typer(help="Policies: which actions a decision or an automatic match takes.", no_args_is_help=True)
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Name = Annotated[str, typer.Argument(help="Webhook name.")]
PolicyName = Annotated[str, typer.Argument(help="Policy name.")]
SecretOut = Annotated[
    Path | None,
    typer.Option("--secret-out", help="Write the signing secret to this file (mode 0600) instead of printing it."),
]
#: Where ``webhook receive`` looks for the secret when no ``--secret-file`` is given.
SECRET_ENV = "SAFEHOLD_WEBHOOK_SECRET"


def _svc():
    return services(load_index=False)


def _print_json(rows) -> None:
    for r in rows:
        print(json.dumps(r))


# ------------------------------------------------------------------------------ webhooks


@webhook_app.command("add")
def webhook_add(
    name: Name,
    url: Annotated[str, typer.Argument(help="http(s) URL the platform receives actions on.")],
    event: Annotated[
        list[str] | None, typer.Option("--event", "-e", help="An action kind to receive (repeat); default: all.")
    ] = None,
    secret_out: SecretOut = None,
    as_json: AsJson = False,
) -> None:
    """Add a receiver. Its signing secret is printed once, or written to --secret-out; only a sealed copy is
    stored."""
    with fail():
        hook, secret = _svc().webhooks.create(name, url, events=event or [], actor="cli")
    if as_json:
        print(json.dumps(hook if secret_out else {**hook, "secret": secret}))
    else:
        out.print(f"webhook [bold]{hook['name']}[/] → {hook['url']}")
    _hand_over(name, secret, secret_out, quiet=as_json)


def _hand_over(name: str, secret: str, secret_out: Path | None, *, quiet: bool = False) -> None:
    """Give a new signing secret to the operator once: into ``secret_out``, created (or truncated) with mode
    0600 before a byte is written so no other user can read it, or else on standard output. ``quiet`` leaves
    the printing to a ``--json`` answer."""
    if secret_out is None:
        if not quiet:
            out.print("its signing secret, shown only this once:")
            print(secret)
        return
    with fail():
        try:
            fd = os.open(secret_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise SafeholdError(
                "cli.write_failed",
                f"Cannot write {secret_out}: {exc.strerror}. The secret is not saved anywhere; make a new one with "
                f"`safehold webhook rotate {name} --secret-out FILE`.",
            ) from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        f.write(secret + "\n")
    if not quiet:
        out.print(f"its signing secret is in {secret_out} (readable by you only)", highlight=False)


@webhook_app.command("list")
def webhook_list(as_json: AsJson = False) -> None:
    """List receivers with their pending and dead deliveries."""
    with fail():
        rows = _svc().webhooks.list()
    if as_json:
        return _print_json(rows)
    table = Table(Column("name", no_wrap=True), "url", "events", "enabled", "pending", "dead")
    for h in rows:
        events = ", ".join(h["events"]) or "all"
        table.add_row(h["name"], h["url"], events, "yes" if h["enabled"] else "no", str(h["pending"]), str(h["dead"]))
    out.print(table)


@webhook_app.command("remove")
def webhook_remove(name: Name) -> None:
    """Delete a receiver with its delivery history."""
    with fail():
        hook = _svc().webhooks.delete(name, actor="cli")
    out.print(f"removed webhook {hook['name']} ({hook['pending']} pending, {hook['dead']} dead deliveries dropped)")


@webhook_app.command("rotate")
def webhook_rotate(name: Name, secret_out: SecretOut = None) -> None:
    """Replace the signing secret at once; the new one is printed once, or written to --secret-out."""
    with fail():
        secret = _svc().webhooks.rotate_secret(name, actor="cli")
    out.print(f"new signing secret for [bold]{name}[/]")
    _hand_over(name, secret, secret_out)


@webhook_app.command("test")
def webhook_test(name: Name) -> None:
    """Queue a signed ping; the server (or `safehold delivery run`) sends it."""
    with fail():
        d = _svc().webhooks.test(name, actor="cli")
    out.print(f"ping queued as delivery {d['id']} (key {d['idempotency_key']}); see `safehold delivery list`")


@webhook_app.command("receive")
def webhook_receive(
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", help=f"File holding the signing secret (default: ${SECRET_ENV}, else ask)."),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 9000,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
) -> None:
    """Run a local receiver that verifies each delivery's signature and prints it: a stand-in for the
    platform while trying Safehold out, and the reference for what a real receiver must check."""
    from safehold.actions import receiver

    with fail():
        secret = _receiver_secret(secret_file)
    server = receiver.make_server(host, port, secret, on_delivery=_show_delivery)
    out.print(f"receiving on http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _receiver_secret(secret_file: Path | None) -> str:
    """The signing secret from ``secret_file``, else ``$SAFEHOLD_WEBHOOK_SECRET``, else a hidden prompt."""
    if secret_file is not None:
        try:
            secret = secret_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SafeholdError("cli.path_not_found", f"No such file: {secret_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SafeholdError("cli.read_failed", f"Cannot read {secret_file}: {exc}.") from None
    else:
        secret = os.environ.get(SECRET_ENV, "").strip() or typer.prompt("Signing secret", hide_input=True).strip()
    if not secret:
        raise SafeholdError("webhook.secret_missing", f"No signing secret in {secret_file or '$' + SECRET_ENV}.")
    return secret


def _show_delivery(delivery: Delivery) -> None:
    if not delivery.valid:
        out.print("[red]refused[/]: the signature does not verify (wrong secret, altered body or too old)")
        return
    about = escape(_delivery_line(delivery.body))
    out.print(f"[green]verified[/] {about} (idempotency key {delivery.idempotency_key})")


def _delivery_line(body: dict) -> str:
    """What a delivery is about, in one line: the case of an action with the action's params (an interrupt's
    stream and capture time are what the platform acts on), the report or appeal of an outcome. The values come
    from strangers (a content id typed in the report form), so the caller prints them as text."""
    event = body.get("event")
    for kind in ("user_report", "appeal"):
        about = body.get(kind)
        if isinstance(about, dict):
            state = about.get("outcome") or about.get("status")
            return (
                f"{event} {kind} {about.get('id')} {state} reference {about.get('reference')} "
                f"case {about.get('case_id')} content {about.get('content_id')} account {about.get('account_id')}"
            )
    case = body.get("case") or {}
    line = f"{event} case {case.get('id')} content {case.get('content_id')} account {case.get('account_id')}"
    params = (body.get("action") or {}).get("params")
    return f"{line} params {json.dumps(params, sort_keys=True)}" if params else line


# ---------------------------------------------------------------------------- deliveries


@delivery_app.command("list")
def delivery_list(
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead (the dead-letter list).")] = None,
    webhook: Annotated[str | None, typer.Option(help="Only this receiver.")] = None,
    case: Annotated[int | None, typer.Option(help="Only deliveries of this case's actions.")] = None,
    after_id: Annotated[int, typer.Option(help="Start after this delivery id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (1-1000).")] = 100,
    as_json: AsJson = False,
) -> None:
    """List deliveries in id order."""
    with fail():
        rows = _svc().webhooks.deliveries(status=status, webhook=webhook, case_id=case, limit=limit, after_id=after_id)
    if as_json:
        return _print_json(rows)
    table = Table("id", "webhook", "event", "case", "status", "attempts", "last result", "created (UTC)")
    for d in rows:
        result = d["last_error"] or (str(d["last_status"]) if d["last_status"] else "")
        case_id = str(d["case_id"]) if d["case_id"] is not None else ""
        created = d["created_at"][:19].replace("T", " ")
        table.add_row(str(d["id"]), d["webhook"], d["event"], case_id, d["status"], str(d["attempts"]), result, created)
    out.print(table)


@delivery_app.command("retry")
def delivery_retry(delivery_id: Annotated[int, typer.Argument(help="Delivery id.")]) -> None:
    """Send a dead or waiting delivery again now (same idempotency key, fresh attempt budget)."""
    with fail():
        d = _svc().webhooks.retry(delivery_id, actor="cli")
    out.print(f"delivery {d['id']} to {d['webhook']} queued again")


@delivery_app.command("run")
def delivery_run(
    once: Annotated[bool, typer.Option("--once", help="Send what is due now, then exit.")] = False,
) -> None:
    """Deliver in the foreground until Ctrl-C (a separate worker; `safehold serve` also delivers, and with
    SAFEHOLD_TASKS=celery `safehold worker` does)."""
    from safehold.background import DELIVER_WEBHOOKS

    with fail():
        svc = _svc()
        if once:
            total = 0
            while sent := svc.dispatcher.run_once(limit=500):
                total += sent
            out.print(f"{total} delivery attempt(s)")
            return
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        svc.tasks.start([DELIVER_WEBHOOKS])
        err.print("delivering; Ctrl-C to stop")
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
        finally:
            svc.tasks.stop()


# ------------------------------------------------------------------------------ policies


@policy_app.command("list")
def policy_list(as_json: AsJson = False) -> None:
    """List policies."""
    with fail():
        rows = _svc().actions.list_policies()
    if as_json:
        return _print_json(rows)
    table = Table(Column("name", no_wrap=True), "trigger", "match", "actions", "enabled", "updated by")
    for p in rows:
        actions = ", ".join(a if isinstance(a, str) else a["kind"] for a in p["actions"])
        enabled = "yes" if p["enabled"] else "no"
        table.add_row(p["name"], p["trigger"], json.dumps(p["match"]), actions, enabled, p["updated_by"] or "")
    out.print(table)


@policy_app.command("add")
def policy_add(
    name: PolicyName,
    action: Annotated[list[str], typer.Option("--action", "-a", help="An action kind to take (repeat).")],
    trigger: Annotated[str, typer.Option(help="decision or auto.")] = "decision",
    match: Annotated[str, typer.Option(help='JSON, e.g. \'{"decision": "csam"}\' or \'{"bank": "ncmec"}\'.')] = "{}",
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
) -> None:
    """Add a policy."""
    with fail():
        try:
            conditions = json.loads(match)
        except json.JSONDecodeError as exc:
            raise SafeholdError("policy.invalid", f"--match is not valid JSON: {exc}") from None
        p = _svc().actions.create_policy(name, trigger, conditions, action, enabled=not disabled, actor="cli")
    out.print(f"policy [bold]{p['name']}[/] ({p['trigger']} {json.dumps(p['match'])}) → {', '.join(action)}")


@policy_app.command("remove")
def policy_remove(name: PolicyName) -> None:
    """Delete a policy (actions it already took stay on their cases)."""
    with fail():
        _svc().actions.delete_policy(name, actor="cli")
    out.print(f"removed policy {name}")
