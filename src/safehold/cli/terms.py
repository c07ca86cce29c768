"""``safehold terms …``: the same term-list operations as ``/v1/terms``. A change reaches a running server's
detectors within one upkeep interval, without a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, fail, open_input, open_output, services

app = typer.Typer(help="Term lists for the text detectors: import, export, versions, roll back.", no_args_is_help=True)
out = console()

Name = Annotated[str, typer.Argument(help="List name (lower-case letters, digits, '_').")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ACTOR = "cli"


def _svc():
    return services(load_index=False)


@app.command("list")
def list_lists(as_json: AsJson = False) -> None:
    """Every list, bundled and stored, with its active version."""
    with fail():
        lists = _svc().terms.lists()
    if as_json:
        typer.echo(json.dumps(lists, indent=2))
        return
    table = Table("name", "origin", "version", "terms", "enabled", "versions", "updated")
    for t in lists:
        table.add_row(
            t["name"],
            t["origin"] + (" (replaces bundled)" if t.get("replaces_bundled") else ""),
            str(t["version"]),
            str(t["terms"]),
            "yes" if t["enabled"] else "no",
            str(t["versions"]),
            t.get("updated_at") or "—",
        )
    out.print(table)


@app.command("import")
def import_list(
    name: Name,
    path: Annotated[Path, typer.Argument(help="CSV file: term,category[,severity,language,source].")],
    version: Annotated[int | None, typer.Option(help="Default: the file's '# version:' line, else next.")] = None,
) -> None:
    """Import a new version of a list and make it active."""
    with fail():
        with open_input(path) as f:
            data = f.read()
        result = _svc().terms.put(name, data, ACTOR, version=version)
    state = "imported" if result["created"] else "already there"
    typer.echo(f"{name} v{result['version']}: {result['terms']} terms ({state}, active)")


@app.command("export")
def export_list(
    name: Name,
    version: Annotated[int | None, typer.Option(help="Default: the active version.")] = None,
    to: Annotated[Path | None, typer.Option("--out", help="File to write (default: standard output).")] = None,
) -> None:
    """Write a list as CSV."""
    with fail():
        text = _svc().terms.export_csv(name, version)
        with open_output(to or Path("-")) as f:
            f.write(text.encode("utf-8"))
    if to is not None:
        typer.echo(f"written to {to}")


@app.command("versions")
def versions(name: Name, as_json: AsJson = False) -> None:
    """The imported versions of a list."""
    with fail():
        rows = _svc().terms.versions(name)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("version", "terms", "active", "sha256", "by", "at")
    for r in rows:
        active = "yes" if r["active"] else ""
        table.add_row(
            str(r["version"]), str(r["terms"]), active, r["sha256"][:16], r["created_by"] or "—", r["created_at"]
        )
    out.print(table)


@app.command("activate")
def activate(name: Name, version: Annotated[int, typer.Argument(help="An imported version.")]) -> None:
    """Make an imported version active (roll back or forward)."""
    with fail():
        _svc().terms.activate(name, version, ACTOR)
    typer.echo(f"{name} v{version} is active")


@app.command("enable")
def enable(name: Name) -> None:
    """Switch a list on."""
    with fail():
        _svc().terms.set_enabled(name, True, ACTOR)
    typer.echo(f"{name} enabled")


@app.command("disable")
def disable(name: Name) -> None:
    """Switch a list off (a bundled list too)."""
    with fail():
        _svc().terms.set_enabled(name, False, ACTOR)
    typer.echo(f"{name} disabled")


@app.command("delete")
def delete(name: Name) -> None:
    """Delete a stored list and all its versions; a bundled list of the same name becomes active again."""
    with fail():
        result = _svc().terms.delete(name, ACTOR)
    extra = " (the bundled list is active again)" if result["bundled_restored"] else ""
    typer.echo(f"{name} deleted, {result['versions']} version(s){extra}")
