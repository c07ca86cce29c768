"""``safehold contact …``: the contact policy, as ``/v1/interactions/check`` and ``/v1/safety/contact-policy``
(docs/safety.md#contact-policy). A saved policy reaches running servers within ``SAFEHOLD_CONTACT_POLICY_TTL``
seconds, without a restart."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, err, fail, open_input, services
from safehold.errors import SafeholdError

contact_app = typer.Typer(help="Contact policy: check an interaction, show or change the policy.", no_args_is_help=True)
policy_app = typer.Typer(help="The operator's contact policy.", no_args_is_help=True)
contact_app.add_typer(policy_app, name="policy")
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PolicyFile = Annotated[Path, typer.Argument(help="A JSON file holding the policy (docs/safety.md#policy-format).")]
ACTOR = "cli"
MAX_FILE = 1 << 20


def _svc():
    return services(load_index=False)


def _read_policy(path: Path) -> object:
    with open_input(path) as f:
        raw = f.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        raise SafeholdError("cli.invalid_json", f"{path} is larger than {MAX_FILE} bytes.")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SafeholdError("cli.invalid_json", f"{path} is not valid JSON ({exc}).") from None


@contextmanager
def _every_problem() -> Iterator[None]:
    """An invalid policy's problems, one a line on stderr, before the error itself."""
    try:
        yield
    except SafeholdError as exc:
        for e in exc.detail.get("errors", ())[1:]:
            err.print(f"  {e['loc']}: {e['msg']}", markup=False, highlight=False, soft_wrap=True)
        raise


@contact_app.command("check")
def check(
    sender: Annotated[str, typer.Argument(help="The sender's account id.")],
    recipient: Annotated[str, typer.Argument(help="The recipient's account id.")],
    kind: Annotated[str, typer.Option(help="message, friend_request, follow, call, media or discover.")] = "message",
    mutual: Annotated[int, typer.Option("--mutual", help="Contacts they share.")] = 0,
    prior: Annotated[bool, typer.Option("--prior-conversation", help="They have talked before.")] = False,
    follows: Annotated[bool, typer.Option("--recipient-follows", help="The recipient follows the sender.")] = False,
    created: Annotated[
        dt.datetime | None, typer.Option("--sender-created", help="When the sender's account was made (UTC).")
    ] = None,
    locale: Annotated[str, typer.Option(help="Locale of the prompt's text (e.g. en, pt-BR).")] = "en",
    as_json: AsJson = False,
) -> None:
    """The policy's decision for one interaction (the same answer as POST /v1/interactions/check)."""
    with fail():
        result = _svc().contact.check(
            sender,
            recipient,
            kind,
            mutual_contacts=mutual,
            prior_conversation=prior,
            recipient_follows_sender=follows,
            sender_created_at=created,
            locale=locale,
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['decision']}  ({result['reason']})")
    typer.echo(
        f"rule {result['rule'] or '(fallback)'}, prompt {result['prompt'] or '-'}, policy v{result['policy_version']}"
    )
    typer.echo(f"sender {result['sender_band']}, recipient {result['recipient_band']}")
    if "prompt_text" in result:
        typer.echo(f"prompt: {result['prompt_text']['title']}")


@policy_app.command("show")
def show(as_json: AsJson = False) -> None:
    """The active policy: version, author, and its rules in order."""
    from safehold.safety.contact import conditions_text

    with fail():
        shown = _svc().contact.show()
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    who = "built-in default" if shown["builtin"] else f"by {shown['author']} at {shown['created_at']}"
    typer.echo(f"contact policy v{shown['version']} ({who})")
    table = Table("#", "rule", "sender", "recipient", "kinds", "when", "outcome", "prompt")
    for i, rule in enumerate(shown["policy"]["rules"], 1):
        table.add_row(
            str(i),
            rule["name"],
            ", ".join(rule.get("sender", ["any"])),
            ", ".join(rule.get("recipient", ["any"])),
            ", ".join(rule.get("kinds", ["any"])),
            conditions_text(rule),
            rule["outcome"] + (" (relaxed if connected)" if rule.get("relax_when_connected") else ""),
            rule.get("prompt") or "-",
        )
    out.print(table)
    fb = shown["policy"]["fallback"]
    typer.echo(f"otherwise: {fb['outcome']} ({fb['reason']})")


@policy_app.command("set")
def set_policy(path: PolicyFile) -> None:
    """Validate a policy file and make it the active policy (a new version)."""
    with fail(), _every_problem():
        shown = _svc().contact.save(_read_policy(path), ACTOR)
    typer.echo(f"contact policy v{shown['version']} saved and active ({len(shown['policy']['rules'])} rules)")


@policy_app.command("test")
def test_policy(path: PolicyFile) -> None:
    """Validate a policy file without saving it."""
    with fail(), _every_problem():
        policy = _svc().contact.validate(_read_policy(path))
    typer.echo(f"valid: {len(policy.rules)} rules")


@policy_app.command("reset")
def reset() -> None:
    """Make the built-in default policy active again (saved as a new version; the history is kept)."""
    with fail():
        shown = _svc().contact.reset(ACTOR)
    typer.echo(f"contact policy v{shown['version']}: the built-in default")
