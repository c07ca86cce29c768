"""``safehold conversation …``: the same conversation operations as ``/v1/conversations``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from safehold.cli.common import console, fail, progress, services
from safehold.errors import SafeholdError

app = typer.Typer(
    help="Conversations scored for grooming and sextortion: feed, show, list, forget.", no_args_is_help=True
)
out = console()

ConversationId = Annotated[str, typer.Argument(help="The platform's conversation id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ACTOR = "cli"


def _svc():
    return services(load_index=False)


@app.command("feed")
def feed(
    path: Annotated[
        Path,
        typer.Argument(
            help='JSON Lines, one message a line: {"conversation", "id", "author", "text", "sent_at"?, "age"?}.',
            exists=True,
            dir_okay=False,
        ),
    ],
    as_json: AsJson = False,
) -> None:
    """Score a file of messages, in order; print the conversations that alert and a summary.

    Message ids make feeding the same file again safe: messages already scored count as duplicates.
    """
    from safehold.rules.conversations import MAX_MESSAGES

    results: dict[str, dict] = {}
    totals = {"lines": 0, "accepted": 0, "duplicates": 0, "cases_opened": 0}
    with fail():
        svc = _svc()
        with path.open("rb") as f:
            total = sum(1 for line in f if line.strip())
        batch: list[dict] = []
        participants: dict[str, dict] = {}
        current: str | None = None

        def flush() -> None:
            if not batch:
                return
            body = {"messages": list(batch)}
            if participants:
                body["participants"] = dict(participants)
            r = svc.conversations.add_messages(ACTOR, current, body)
            totals["accepted"] += r["accepted"]
            totals["duplicates"] += r["duplicates"]
            if r["case"] is not None and r["case"]["created"]:
                totals["cases_opened"] += 1
            results[current] = r
            batch.clear()
            participants.clear()

        with progress() as bar, path.open(encoding="utf-8-sig") as f:
            task = bar.add_task("scoring", total=total)
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    conversation, message, age = _read_line(n, line)
                except SafeholdError as exc:
                    flush()  # the lines before the bad one are scored; feeding the file again is safe
                    exc.message = exc.message.rstrip(".") + ". The lines before it were scored; fix it, feed again."
                    raise
                author = message["author"]
                age_conflict = age is not None and participants.get(author, {}).get("age", age) != age
                if conversation != current or len(batch) >= MAX_MESSAGES or age_conflict:
                    flush()
                    current = conversation
                batch.append(message)
                if age is not None:
                    participants[author] = {"age": age}
                totals["lines"] += 1
                bar.advance(task)
            flush()
    alerted = {cid: r for cid, r in results.items() if r["assessment"]["alert"]}
    summary = {**totals, "conversations": len(results), "alerting": len(alerted)}
    if as_json:
        typer.echo(json.dumps({"alerting": alerted, "summary": summary}, indent=2))
        return
    for cid, r in alerted.items():
        _print_assessment(cid, r["assessment"], r["case"])
    out.print(
        f"{summary['lines']} messages in {summary['conversations']} conversation(s): "
        f"{summary['accepted']} scored, {summary['duplicates']} duplicate(s); "
        f"{summary['alerting']} alerting, {summary['cases_opened']} case(s) opened",
        soft_wrap=True,
    )


def _read_line(n: int, line: str) -> tuple[str, dict, int | None]:
    """One line as (conversation id, message, age), checked as the service will check it."""
    from safehold.rules.conversations import MESSAGE_KEYS, check_id, parse

    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SafeholdError("conversation.invalid_line", f"line {n}: not valid JSON ({exc.msg}).") from None
    if not isinstance(rec, dict):
        raise SafeholdError("conversation.invalid_line", f"line {n}: a line is a JSON object.")
    unknown = sorted(set(rec) - {"conversation", "age", *MESSAGE_KEYS})
    if unknown:
        raise SafeholdError("conversation.invalid_line", f"line {n}: unknown field(s) {', '.join(unknown)}.")
    message = {k: rec[k] for k in MESSAGE_KEYS if k in rec}
    age = rec.get("age")
    try:
        conversation = check_id(rec.get("conversation"))
        body = {"messages": [message]}
        if age is not None:
            body["participants"] = {message.get("author") or "": {"age": age}}
        parse(body)
    except SafeholdError as exc:
        raise SafeholdError(exc.code, f"line {n}: {_first_error(exc)}", status=exc.status, detail=exc.detail) from None
    return conversation, message, age


def _first_error(exc: SafeholdError) -> str:
    errors = exc.detail.get("errors") or []
    if not errors:
        return exc.message
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ()) if p not in ("messages", 0)]
    if loc[:1] == ["participants"]:
        loc = ["age"]
    return f"{'.'.join(loc) or 'line'}: {e.get('msg')}"


def _print_assessment(cid: str, a: dict, case: dict | None) -> None:
    where = f", case {case['id']} ({case['status']}, {case['band']})" if case else ""
    out.print(
        f"[bold]{escape(cid)}[/]: {a['level']} {a['score']:.2f} — risk {escape(str(a['risk_author']))}, "
        f"at risk {escape(str(a['at_risk_author']))}, {a['messages']} message(s){where}",
        soft_wrap=True,
    )
    for line in a["explanation"]:
        out.print(f"  - {escape(line)}", soft_wrap=True)


@app.command("show")
def show(conversation_id: ConversationId, as_json: AsJson = False) -> None:
    """One conversation: its score, its case and the assessment with its evidence."""
    with fail():
        c = _svc().conversations.get(conversation_id)
    if as_json:
        typer.echo(json.dumps(c, indent=2))
        return
    _print_assessment(c["conversation_id"], c["assessment"], c["case"])
    for stage in c["assessment"]["stages"]:
        for e in stage["evidence"]:
            ref = e["message_id"] if e["message_id"] is not None else f"#{e['index'] + 1}"
            out.print(f"    {stage['stage']} ({ref}): {escape(e['excerpt'])}", soft_wrap=True)


@app.command("list")
def list_conversations(
    min_score: Annotated[float, typer.Option(help="Only conversations scoring at least this (0 to 1).")] = 0.0,
    alerts: Annotated[bool, typer.Option("--alerts", help="Only conversations that alert.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (1 to 500).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    as_json: AsJson = False,
) -> None:
    """Stored conversations, highest score first."""
    with fail():
        rows = _svc().conversations.list(
            min_score=min_score, alert=True if alerts else None, limit=limit, offset=offset
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("conversation", "score", "level", "alert", "risk author", "at risk", "messages", "case", "updated")
    for r in rows:
        case = r["case"]
        table.add_row(
            escape(r["conversation_id"]),
            f"{r['score']:.2f}",
            r["level"],
            "yes" if r["alert"] else "no",
            escape(r["risk_author"] or "—"),
            escape(r["at_risk_author"] or "—"),
            str(r["messages"]),
            f"{case['id']} ({case['status']})" if case else "—",
            r["updated_at"] or "—",
        )
    out.print(table)


@app.command("forget")
def forget(
    conversation_id: ConversationId, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False
) -> None:
    """Delete a conversation's stored state and message ids (its case, if any, stays)."""
    if not yes:
        typer.confirm(f"Forget conversation {conversation_id}?", abort=True)
    with fail():
        r = _svc().conversations.forget(conversation_id, ACTOR)
    out.print(f"forgot conversation {escape(conversation_id)} ({r['messages']} message(s) scored)")
