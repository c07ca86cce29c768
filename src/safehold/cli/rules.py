"""``safehold rules …``: the same rule operations as ``/v1/rules`` (docs/rules.md). A change reaches a running
server's rule set within one upkeep interval, without a restart.

``--actor`` names who acts (the audit log's actor, a version's author or approver): approval needs two different
names, as it needs two admins in the API."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, fail, services

app = typer.Typer(
    help="Operator rules in CEL: write, diff, approve, shadow, enable, backtest; named lists.", no_args_is_help=True
)
out = console()

Name = Annotated[str, typer.Argument(help="Rule name (lower-case letters, digits, '_', '.', '-').")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Actor = Annotated[str, typer.Option("--actor", help="Who acts (author or approver).")]
Version = Annotated[int | None, typer.Option(help="Default: the newest version.")]
Effect = Annotated[
    str | None, typer.Option(help='The effect as JSON: {"type": "open_case", "priority": "P1"}, … (docs/rules.md).')
]


def _svc():
    return services(load_index=False)


def _effect(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise typer.BadParameter("the effect is a JSON object") from None


def _show(rule: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rule, indent=2))
        return
    out.print(
        f"[bold]{rule['name']}[/] v{rule['version']} ({rule['status']}, active v{rule['active_version'] or '—'}, "
        + (f"v{rule['shadow_version']} in shadow beside it, " if rule.get("shadow_version") else "")
        + f"owner {rule['owner']}, {'approved' if rule['approved'] else 'not approved'})"
    )
    out.print(f"  when: {rule['expression']}", markup=False, highlight=False)
    out.print(f"  then: {json.dumps(rule['effect'])}", markup=False, highlight=False)


@app.command("list")
def list_rules(as_json: AsJson = False) -> None:
    """Every rule with its status and versions."""
    with fail():
        rules = _svc().rules.all_rules()
    if as_json:
        typer.echo(json.dumps(rules, indent=2))
        return
    table = Table("name", "status", "version", "active", "approved", "effect", "errors", "owner")
    for r in rules:
        table.add_row(
            r["name"], r["status"], str(r["version"]), str(r["active_version"] or "—"),
            "yes" if r["approved"] else "no", r["effect"]["type"], str(r["errors"]), r["owner"],
        )  # fmt: skip
    out.print(table)


@app.command("show")
def show(name: Name, as_json: AsJson = False) -> None:
    """A rule and every version of it."""
    with fail():
        rule = _svc().rules.show(name)
    _show(rule, as_json)
    if not as_json:
        for v in rule["versions"]:
            approved = f", approved by {v['approved_by']}" if v["approved_by"] else ""
            out.print(f"  v{v['version']} by {v['created_by']} at {v['created_at']}{approved}")


@app.command("create")
def create(
    name: Name,
    expression: Annotated[str, typer.Argument(help="The CEL expression.")],
    effect: Effect = None,
    description: Annotated[str, typer.Option(help="What the rule is for.")] = "",
    actor: Actor = "cli",
    as_json: AsJson = False,
) -> None:
    """Write a new rule (version 1, a draft)."""
    with fail():
        rule = _svc().rules.create(name, expression, _effect(effect) or {}, actor, description=description)
    _show(rule, as_json)


@app.command("edit")
def edit(
    name: Name,
    expression: Annotated[str | None, typer.Option(help="A new CEL expression.")] = None,
    effect: Effect = None,
    description: Annotated[str | None, typer.Option(help="A new description.")] = None,
    actor: Actor = "cli",
    as_json: AsJson = False,
) -> None:
    """A new version of a rule (a live version keeps running until the new one is enabled)."""
    with fail():
        rule = _svc().rules.edit(name, actor, expression=expression, effect=_effect(effect), description=description)
    _show(rule, as_json)


@app.command("diff")
def diff(
    name: Name,
    a: Annotated[int | None, typer.Option("--from", help="Default: the version before --to.")] = None,
    b: Annotated[int | None, typer.Option("--to", help="Default: the newest version.")] = None,
    as_json: AsJson = False,
) -> None:
    """The diff between two versions."""
    with fail():
        d = _svc().rules.diff(name, a, b)
    typer.echo(json.dumps(d, indent=2) if as_json else d["diff"])


@app.command("approve")
def approve(name: Name, version: Version = None, actor: Actor = "cli", as_json: AsJson = False) -> None:
    """Approve a version (the approver is not its author)."""
    with fail():
        rule = _svc().rules.approve(name, actor, version)
    _show(rule, as_json)


def _status(status: str):
    def command(name: Name, version: Version = None, actor: Actor = "cli", as_json: AsJson = False) -> None:
        with fail():
            rule = _svc().rules.set_status(name, status, actor, version)
        _show(rule, as_json)

    return command


app.command(
    "enable",
    help="Run a version live (approved first unless SAFEHOLD_RULES_REQUIRE_APPROVAL=false); it ends any shadow beside "
    "the live version (promoting the shadow version, or with the live version stopping the shadow alone).",
)(_status("live"))
app.command(
    "shadow",
    help="Run a version in shadow: it records what it would have done, and does nothing. On a live rule it runs "
    "beside the live version, which keeps acting.",
)(_status("shadow"))
app.command("disable", help="Stop a rule.")(_status("disabled"))


@app.command("backtest")
def backtest(
    name: Name,
    days: Annotated[int, typer.Option(min=1, max=365, help="Days of recorded detections.")] = 7,
    version: Version = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Matches listed at most.")] = 20,
    as_json: AsJson = False,
) -> None:
    """What a version would have matched over the detections of the last N days."""
    with fail():
        r = _svc().rules.backtest(name, days, version, limit)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    cut = " (truncated)" if r["truncated"] else ""
    out.print(f"{r['name']} v{r['version']}: {r['matched']} of {r['detections']} detections{cut}, {r['errors']} errors")
    for e in r["examples"]:
        out.print(f"  case {e['case_id']} at {e['at']} content={e['content_id']} account={e['account_id']}")


@app.command("lists")
def lists(as_json: AsJson = False) -> None:
    """The named lists rules read with `in`, and any change waiting for approval."""
    found = _svc().rules.lists()
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("name", "kind", "items", "version", "waiting change")
    for r in found:
        waiting = f"{r['pending']['items']} items by {r['pending']['by']}" if r["pending"] else "—"
        table.add_row(r["name"], r["kind"], str(r["items"]), str(r["version"]), waiting)
    out.print(table)


@app.command("put-list")
def put_list(
    name: Name,
    file: Annotated[typer.FileText, typer.Argument(help="The items, one a line ('-': standard input).")],
    kind: Annotated[str, typer.Option(help="terms, hashes or accounts.")] = "accounts",
    actor: Actor = "cli",
    as_json: AsJson = False,
) -> None:
    """Create or replace a named list. A list a live rule reads changes only once another admin approves
    (`approve-list`) when approval is required."""
    items = [line.strip() for line in file if line.strip()]
    with fail():
        r = _svc().rules.put_list(name, kind, items, actor)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    waits = f": waiting for approval (read by {', '.join(r['read_by'])})" if r["pending"] else ""
    out.print(f"{r['name']}: {r['items']} {r['kind']}{waits}")


@app.command("approve-list")
def approve_list(name: Name, actor: Actor = "cli", as_json: AsJson = False) -> None:
    """Put a named list's waiting change in force (the approver is not its author)."""
    with fail():
        r = _svc().rules.approve_list(name, actor)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in r.items() if k not in ("values", "pending_values")}, indent=2))
        return
    out.print(f"{r['name']}: {r['items']} {r['kind']}, version {r['version']}, in force")
