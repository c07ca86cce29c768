"""``safehold media …``: nudity protection for minors from the command line (docs/safety.md) — check an image as
``POST /v1/media/check`` does (the same service: the same decision, and the same case for an adult's explicit
image to a minor), and read or replace the media policy. The actor is ``cli:<operating-system user>``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from safehold.cli.common import console, fail, open_input, services
from safehold.cli.prompts import actor
from safehold.errors import SafeholdError

app = typer.Typer(help="Nudity protection for minors: check images in messages, the media policy.")
out = console()


def _read(path: Path, limit: int) -> bytes:
    with open_input(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise SafeholdError("media.too_large", f"{path} is larger than {limit} bytes.", status=413)
    return data


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The image.")],
    sender: Annotated[str, typer.Option(help="The sending account's id.")],
    recipient: Annotated[str | None, typer.Option(help="The receiving account's id (needed for deliver).")] = None,
    stage: Annotated[str, typer.Option(help="deliver (a message arriving) or send (being composed).")] = "deliver",
    locale: Annotated[str, typer.Option(help="Locale of the prompts.")] = "en",
    content_id: Annotated[str | None, typer.Option(help="The message's id, named on a case.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole answer as JSON.")] = False,
) -> None:
    """Decide what to do with an image in a message: allow, blur, block or warn, with the prompts to show."""
    with fail():
        svc = services(load_index=False)
        data = _read(file, svc.settings.max_upload_bytes)
        who = actor()
        answer = svc.media_check.check(
            data,
            sender=sender,
            recipient=recipient,
            stage=stage,
            locale=locale,
            content_id=content_id,
            actor=who,
            scope=who,
        )
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    # The score as the API gives it (4 places): fewer would show a hit under a low threshold as "0.000".
    score = "not classified" if answer["score"] is None else f"{answer['score']} (threshold {answer['threshold']})"
    to = "" if answer["recipient_band"] is None else f"recipient {answer['recipient_band']}  "
    out.print(
        f"{answer['decision']}  {answer['stage']}  sender {answer['sender_band']}  {to}score {score}",
        highlight=False,
        markup=False,
    )
    for p in answer["prompts"]:
        out.print(f"  [{p['key']}] {p['title']}", highlight=False, markup=False)
    if answer["case_id"] is not None:
        out.print(f"  case {answer['case_id']} opened for review", highlight=False, markup=False)


@app.command("policy")
def policy(
    set_file: Annotated[
        Path | None, typer.Option("--set", help="Replace the policy with this JSON file (see docs/safety.md).")
    ] = None,
) -> None:
    """Show the media policy, or replace it with --set FILE."""
    with fail():
        media = services(load_index=False).media_check
        if set_file is None:
            info = media.policy_info()
        else:
            try:
                body = json.loads(_read(set_file, 1_000_000))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SafeholdError("media.invalid_policy", f"{set_file} is not JSON: {exc}") from None
            info = media.set_policy(body, actor())
    typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
