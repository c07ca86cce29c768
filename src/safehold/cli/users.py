"""``safehold user …``: console staff accounts, the same operations as ``/v1/users``.

The command line is also the way back in when no one can log in to the console (the first admin, a forgotten
password, a locked-out admin). Passwords are prompted for twice without echo, or read from standard input with
``--password-stdin`` for scripts; never from an argument, which would end up in shell history and ``ps``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, fail, services
from safehold.errors import SafeholdError

app = typer.Typer(help="Console users (reviewers, admins, auditors): create, passwords, roles.", no_args_is_help=True)
out = console()

ACTOR = "cli"
Name = Annotated[str, typer.Argument(help="Username.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def _users():
    return services(load_index=False).users


def _password(name: str, from_stdin: bool) -> str:
    """The new password, from standard input or typed twice; a weak one is refused before it is typed again."""
    from safehold.auth.users import check_password

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = typer.prompt("Password", hide_input=True)
    check_password(password, name)
    if typer.prompt("Repeat it", hide_input=True) != password:
        raise SafeholdError("cli.password_mismatch", "The two passwords differ; nothing was changed.")
    return password


def _when(at) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "-"


@app.command("create")
def create(
    name: Name,
    role: Annotated[str, typer.Option(help="admin, senior_reviewer, reviewer, auditor or legal.")],
    display_name: Annotated[str, typer.Option(help="Shown in the console instead of the username.")] = "",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a console user. The name, the role and that the name is free are checked before the password is
    asked for."""
    with fail():
        users = _users()
        users.check_new(name, role)
        u = users.create(name, _password(name, password_stdin), role, display_name, actor=ACTOR)
    out.print(f"created user [bold]{u.username}[/] (role {u.role})")


@app.command("list")
def list_users(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List console users."""
    with fail():
        users = _users().list()
    if as_json:
        print(json.dumps([u.to_dict() for u in users]))
        return
    table = Table("username", "display name", "role", "status", "created", "last log-in")
    for u in users:
        status = "disabled" if u.disabled else f"locked until {_when(u.locked_until)}" if u.locked_until else "active"
        table.add_row(u.username, u.display_name, u.role, status, _when(u.created_at), _when(u.last_login_at))
    out.print(table)


@app.command("passwd")
def passwd(name: Name, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password; ends their console sessions and clears a lock-out. An unknown name is refused
    before the password is asked for."""
    with fail():
        users = _users()
        users.get(name)
        users.set_password(name, _password(name, password_stdin), actor=ACTOR)
    out.print(f"password changed for {name}")


@app.command("set-role")
def set_role(
    name: Name, role: Annotated[str, typer.Argument(help="admin, senior_reviewer, reviewer, auditor or legal.")]
) -> None:
    """Change a user's role (takes effect on their next request)."""
    with fail():
        u = _users().update(name, role=role, actor=ACTOR)
    out.print(f"{u.username} is now {u.role}")


@app.command("disable")
def disable(name: Name) -> None:
    """Disable a user: no more log-ins, and their sessions end at once."""
    with fail():
        u = _users().update(name, disabled=True, actor=ACTOR)
    out.print(f"disabled {u.username}")


@app.command("enable")
def enable(name: Name) -> None:
    """Enable a disabled user again."""
    with fail():
        u = _users().update(name, disabled=False, actor=ACTOR)
    out.print(f"enabled {u.username}")


@app.command("unlock")
def unlock(name: Name) -> None:
    """Clear a lock-out after too many failed log-ins."""
    with fail():
        u = _users().unlock(name, actor=ACTOR)
    out.print(f"unlocked {u.username}")
