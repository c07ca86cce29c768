"""``safehold age …``: accounts' age signals and bands, the same operations as ``/v1/accounts/…``, plus
``age stand-in``, a local age-estimation provider to rehearse the assurance callback against."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import signal
import threading
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from safehold.agebands import BANDS
from safehold.cli.common import console, fail, services
from safehold.errors import SafeholdError

app = typer.Typer(
    help="Age signals and resolved age bands of accounts: record, show, list, stand-in.", no_args_is_help=True
)
out = console()

Account = Annotated[str, typer.Argument(help="The platform's account id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ACTOR = "cli"
#: What an operator may record (``chat`` is the conversation door's own): safehold.safety.ages.EXTERNAL_SOURCES.
SOURCES = ("declared", "assurance", "platform", "reviewer")


def _svc():
    return services(load_index=False)


@app.command("record")
def record(
    account: Account,
    source: Annotated[str, typer.Option(help=f"Where it comes from: {', '.join(SOURCES)}.")],
    birth_date: Annotated[
        dt.datetime | None, typer.Option("--birth-date", formats=["%Y-%m-%d"], help="YYYY-MM-DD.")
    ] = None,
    age: Annotated[float | None, typer.Option(min=0, max=130, help="Years.")] = None,
    band: Annotated[str | None, typer.Option(help=f"One of {', '.join(BANDS)}.")] = None,
    confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="How sure the source is.")] = 1.0,
    method: Annotated[str | None, typer.Option(help="How it is known: estimation, verification, …")] = None,
    provider: Annotated[str | None, typer.Option(help="Who says so.")] = None,
    reference: Annotated[str | None, typer.Option(help="Its reference (a repeated one is a retry).")] = None,
    as_json: AsJson = False,
) -> None:
    """Record one age signal (exactly one of --birth-date, --age, --band) and print the account's band."""
    with fail():
        if sum(v is not None for v in (birth_date, age, band)) != 1:
            raise SafeholdError("cli.conflicting_options", "Give exactly one of --birth-date, --age or --band.")
        if source not in SOURCES:
            raise SafeholdError("cli.usage", f"--source is one of {', '.join(SOURCES)}.")
        result = _svc().ages.add(
            ACTOR, account, source, birth_date=birth_date.date() if birth_date else None, age=age, band=band,
            confidence=confidence, method=method, provider=provider, reference=reference,
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    a = result["age"]
    what = "already recorded (same reference)" if result["duplicate"] else f"signal {result['signal']['id']} recorded"
    out.print(f"{escape(account)}: {what}; band {a['band']} by rule {a['rule']}", highlight=False)


@app.command("show")
def show(account: Account, as_json: AsJson = False) -> None:
    """An account's band, the rule and signal that decided, and all its signals, newest first."""
    with fail():
        age = _svc().ages.show(account)
    if as_json:
        typer.echo(json.dumps(age, indent=2))
        return
    out.print(
        f"{escape(account)}: band [bold]{age['band']}[/bold] by rule {age['rule']}"
        + (f" (signal {age['signal_id']})" if age["signal_id"] else "")
        + (f"; as a sender {age['sender_band']}" if age["sender_band"] != age["band"] else "")
        + ("; [bold red]age conflict[/bold red] (an adult signal, a younger claim)" if age["age_conflict"] else ""),
        highlight=False,
    )
    if not age["signals"]:
        out.print("no signals")
        return
    table = Table("id", "source", "says", "now", "confidence", "method", "provider", "reference", "by", "at")
    for s in age["signals"]:
        says = s["birth_date"] or (f"age {s['age']:g}" if s["age"] is not None else s["band"])
        table.add_row(
            str(s["id"]), s["source"], says, s["band_now"], f"{s['confidence']:.2f}", s["method"] or "",
            s["provider"] or "", escape(s["reference"] or ""), escape(s["actor"]), s["at"][:19],
        )  # fmt: skip
    out.print(table)


@app.command("list")
def list_ages(
    band: Annotated[str | None, typer.Option(help=f"Only this band: {', '.join(BANDS)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: AsJson = False,
) -> None:
    """Accounts with a resolved band, most recently resolved first."""
    with fail():
        page = _svc().ages.list(band=band, limit=limit, offset=offset)
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    table = Table("account", "band", "rule", "signal", "resolved")
    for a in page["accounts"]:
        table.add_row(escape(a["account_id"]), a["band"], a["rule"], str(a["signal_id"] or ""), a["resolved_at"][:19])
    out.print(table)
    out.print(f"{len(page['accounts'])} of {page['total']} account(s)", highlight=False)


@app.command("stand-in")
def stand_in(
    callback_url: Annotated[
        str, typer.Option(help="Safehold's callback for this provider.")
    ] = "http://127.0.0.1:8000/v1/age-assurance/standin/callback",
    secret: Annotated[str | None, typer.Option(help="The shared secret (default: a new random one).")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8091,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Run a local age-estimation stand-in: POST {"account_id", "age"?} to its /estimate and it calls Safehold
    back with a signed result, as a real provider's relay would."""
    from safehold.safety.assurance_standin import StandIn

    secret = secret or secrets.token_urlsafe(24)
    stand = StandIn(secret, callback_url)
    url = stand.start(host, port)
    config = json.dumps({"standin": {"type": "signed_webhook", "secret": secret}})
    out.print(f"Age-estimation stand-in on {url} (Ctrl-C to stop). In the server's environment:", highlight=False)
    print(f"  SAFEHOLD_AGE_ASSURANCE='{config}'")
    print(f"""Then: curl -s {url}/estimate -d '{{"account_id": "kid-1", "age": 14}}'""")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    shown = 0
    try:
        while not done.wait(0.5):
            for sent in stand.sent[shown:]:
                out.print(
                    f"sent {escape(sent['account_id'])}: age {sent['age']} ({sent['reference']})", highlight=False
                )
            shown = len(stand.sent)
    except KeyboardInterrupt:
        pass
    finally:
        stand.stop()
