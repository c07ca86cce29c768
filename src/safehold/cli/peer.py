"""``safehold peer …``: share banks with other Safehold instances (the publishing side of the peer exchange).

Following another instance's bank is an exchange of type ``peer`` (``safehold exchange …``); docs/sharing.md,
"Peer exchange", connects two instances step by step.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from safehold.cli.common import console, err, fail, services

app = typer.Typer(help="Share banks with other Safehold instances: key, peers, shares, feedback.", no_args_is_help=True)
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PeerKey = Annotated[str | None, typer.Option("--key", help="The peer's own key (its `safehold peer key`).")]
ContributionsBank = Annotated[
    str | None, typer.Option(help="Take the peer's signed contributions into this bank (disabled, for review).")
]


def _svc():
    return services(load_index=False)


@app.command("key")
def key(
    secret: Annotated[
        bool,
        typer.Option("--secret", help="Print the private signing seed (a peer exchange's signing_key)."),
    ] = False,
) -> None:
    """This instance's peer public key: send it to the operators who follow your banks (they pin it)."""
    with fail():
        peers = _svc().peers
        print(peers.secret_seed() if secret else peers.public_key())
    if secret:
        err.print("this is a secret: store it only as the signing_key credential of a peer exchange")


@app.command("add-peer")
def add_peer(
    name: Annotated[str, typer.Argument(help="The peer's name here (its operator's platform, say).")],
    public_key: PeerKey = None,
    contributions_bank: ContributionsBank = None,
) -> None:
    """Register a peer and print its API key, once: send it to the peer's operator over a safe channel."""
    with fail():
        created = _svc().peers.add_peer(name, public_key=public_key, contributions_bank=contributions_bank, actor="cli")
    err.print(f"peer {created.name} added (key {created.key_prefix}); its API key, shown only now:")
    print(created.token)


@app.command("set-peer")
def set_peer(
    name: str,
    public_key: PeerKey = None,
    contributions_bank: ContributionsBank = None,
    no_contributions: Annotated[bool, typer.Option(help="Refuse the peer's contributions again.")] = False,
) -> None:
    """Change a peer's key or the bank its contributions land in."""
    with fail():
        row = _svc().peers.update_peer(
            name,
            public_key=public_key,
            contributions_bank=contributions_bank,
            no_contributions=no_contributions,
            actor="cli",
        )
    out.print(f"peer {row['name']}: contributions to {row['contributions_bank'] or 'nowhere (refused)'}")


@app.command("remove-peer")
def remove_peer(name: str) -> None:
    """Forget a peer: its API key is revoked and its shares removed."""
    with fail():
        _svc().peers.remove_peer(name, actor="cli")
    out.print(f"peer {name} removed; its key is revoked")


@app.command("list")
def list_peers(as_json: AsJson = False) -> None:
    """The peers and where their contributions go."""
    with fail():
        rows = _svc().peers.peers()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("name", "key", "contributions to", "peer key")
    for r in rows:
        table.add_row(r["name"], r["key_prefix"], r["contributions_bank"] or "-", r["public_key"] or "-")
    out.print(table)


@app.command("share")
def share(
    bank: str,
    to: Annotated[str | None, typer.Option("--to", help="Only this peer (default: every peer, now and later).")] = None,
) -> None:
    """Let a peer (or every peer) read a bank: its entries, additions and withdrawals."""
    with fail():
        new = _svc().peers.share(bank, to, actor="cli")
    out.print(f"bank {bank} {'is now' if new else 'was already'} shared with {to or 'every peer'}")


@app.command("unshare")
def unshare(
    bank: str,
    to: Annotated[str | None, typer.Option("--to", help="The peer (default: the every-peer share).")] = None,
) -> None:
    """Stop sharing a bank (what a peer already has stays with it)."""
    with fail():
        gone = _svc().peers.unshare(bank, to, actor="cli")
    out.print(f"bank {bank} {'is no longer' if gone else 'was not'} shared with {to or 'every peer'}")


@app.command("shares")
def shares(as_json: AsJson = False) -> None:
    """Which bank is shared with which peer (``*``: every peer)."""
    with fail():
        rows = _svc().peers.shares()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("bank", "kind", "peer")
    for r in rows:
        table.add_row(r["bank"], r["kind"], r["peer"])
    out.print(table)


@app.command("feedback")
def feedback(
    entry: Annotated[int | None, typer.Option(help="Only feedback on this entry id.")] = None,
    after_id: Annotated[int, typer.Option(help="Start after this feedback id.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 100,
    as_json: AsJson = False,
) -> None:
    """What peers said about our entries (true or false positive, and why)."""
    with fail():
        rows = _svc().peers.feedback(entry_id=entry, after_id=after_id, limit=limit)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("id", "peer", "entry", "bank", "verdict", "reason", "at (UTC)")
    for r in rows:
        table.add_row(
            str(r["id"]), r["peer"], str(r["entry_id"]), r["bank"], r["verdict"], r["reason"] or "", r["at"][:19]
        )
    out.print(table)
