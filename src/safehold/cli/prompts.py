"""``safehold prompts …``: the safety prompts (docs/safety.md) — list them in a locale, show one, write an
operator's text, reset it to the bundled one. Changes are audited with the actor ``cli:<operating-system user>``."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, fail, open_input, services
from safehold.errors import SafeholdError

app = typer.Typer(help="Safety prompts: the texts shown for contact friction, blurred media, warnings and help.")
out = console()

Key = Annotated[str, typer.Argument(help="The prompt's key, e.g. media.blurred.")]
Locale = Annotated[str, typer.Argument(help="A locale, e.g. en, pt-BR.")]


def _show(data) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def actor() -> str:
    return f"cli:{getpass.getuser()}"


@app.command("list")
def list_prompts(
    locale: Annotated[str, typer.Option(help="The locale to show them in.")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Every prompt as shown in a locale, and whether an operator's text is in use."""
    with fail():
        prompts = services(load_index=False).prompts.all(locale)
    if as_json:
        _show(prompts)
        return
    table = Table("key", "locale", "overridden", "title")
    for p in prompts:
        table.add_row(p["key"], p["locale"], "yes" if p["overridden"] else "", p["title"])
    out.print(table)


@app.command("show")
def show(key: Key, locale: Locale) -> None:
    """One prompt: what is shown for the locale, the bundled text and the operator's text (if any)."""
    with fail():
        prompts = services(load_index=False).prompts
        _show(
            {
                "shown": prompts.get(key, locale),
                "bundled": prompts.bundled(key, locale),
                "override": prompts.override(key, locale),
            }
        )


@app.command("set")
def set_prompt(
    key: Key,
    locale: Locale,
    title: Annotated[str, typer.Option(help="The title.")],
    body: Annotated[str, typer.Option(help="The text.")],
    help_file: Annotated[
        Path | None,
        typer.Option(
            "--help-file",
            help="A JSON list of help resources (name, url, description, phone, regions); "
            "without it the bundled ones are kept.",
        ),
    ] = None,
) -> None:
    """Write the operator's text of a prompt in a locale (replacing an earlier one)."""
    with fail():
        help_entries = None
        if help_file is not None:
            with open_input(help_file) as f:
                try:
                    help_entries = json.loads(f.read(1_000_001))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise SafeholdError("prompt.invalid", f"{help_file} is not JSON: {exc}") from None
        _show(
            services(load_index=False).prompts.set(
                key, locale, title=title, body=body, help=help_entries, actor=actor()
            )
        )


@app.command("reset")
def reset(key: Key, locale: Locale) -> None:
    """Remove the operator's text: the bundled text (or the fallback locale's) applies again."""
    with fail():
        prompts = services(load_index=False).prompts
        prompts.reset(key, locale, actor=actor())
        _show({"reset": True, "shown": prompts.get(key, locale)})
