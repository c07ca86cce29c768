"""Intake throughput: streamed chat messages and events, one item per request, open loop, against a real
``safehold serve`` — with group commit on (``SAFEHOLD_GROUP_COMMIT_MS``, default 5) and off (0) for comparison.

For each mode and door, :func:`loadgen.sweep` runs ``--rates`` (lowest first) for ``--seconds`` each and reports
the highest rate with no error and p99 ≤ 50 ms, every run's percentiles and the server's CPU milliseconds per
item, also net of what the idle server spends (background polls, measured for ``IDLE_SECONDS`` first). Then
the database is checked: the ids the server acknowledged (200) are all stored, once each, and the conversations'
counters equal the number of distinct message ids (no loss, no duplicate).

- **messages**: ``POST /v1/conversations/{id}/messages`` with one message, spread over ``--conversations``.
- **events**: ``POST /v1/events``, a content event (an image's subject and uploader) with its idempotency key in
  the body; every ``--signal-every``-th carries a platform signal, which opens a case (the rest, like most uploads,
  find nothing).
- **hash_events**: ``POST /v1/scan`` of an image's PDQ hash computed by the platform, naming the upload and its
  uploader (``content_id``, ``account_id``): the image-hash event. Looked up against a block bank of
  ``--bank-hashes`` random PDQ hashes; every ``--hit-every``-th sends a banked hash with 1–8 bits flipped, which
  matches and opens a case (the rest are fresh random hashes: misses, as nearly every upload).

Every hash event's answer is checked (a hit: verdict ``match`` and one case; a miss: ``no_match``), and the cases
the hits were answered with must be in the store.

Usage: ``.venv/bin/python bench/intake.py --database-url postgresql+psycopg://postgres@127.0.0.1/intake_bench
[--seconds 10] [--rates 250,500,1000,2000] [--conversations 1000] [--modes on,off] [--doors messages,events,hash_events]
[--workers 1] [--out bench/results/intake.json]`` (without ``--database-url``: SQLite in a temporary home). The
database must be empty or new (the server migrates it). ``--workers`` API processes serve (``safehold serve
--workers``); the server CPU is that of all of them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import loadgen  # noqa: E402
from machine_info import machine  # noqa: E402
from server import Server  # noqa: E402

#: Seconds the idle server's CPU is measured for, before the runs.
IDLE_SECONDS = 5.0


def make_message(run: str, conversations: int):
    def make(i: int) -> loadgen.Request:
        body = {"id": f"{run}-m{i}", "author": f"u{i % 7}", "text": f"see you at practice tomorrow {i}"}
        return loadgen.Request(f"/v1/conversations/{run}-c{i % conversations}/messages", json.dumps(body).encode())

    return make


def make_event(run: str, signal_every: int):
    def make(i: int) -> loadgen.Request:
        body = {
            "type": "content",
            "idempotency_key": f"{run}-e{i}",
            "content": {"id": f"{run}-post-{i}", "media_type": "image"},
            "account": {"id": f"{run}-u{i % 1000}"},
        }
        if signal_every and i % signal_every == 0:  # the platform's own detector flagged it: a case opens
            body["signals"] = [{"source": "user_report", "confidence": 0.4, "label": "platform-report"}]
        return loadgen.Request("/v1/events", json.dumps(body).encode())

    return make


BANK = "intake-hashes"


def banked_hashes(n: int) -> list[str]:
    rng = random.Random(20261204)
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def flipped(value: str, rng: random.Random) -> str:
    n = int(value, 16)
    for bit in rng.sample(range(256), rng.randint(1, 8)):
        n ^= 1 << bit
    return f"{n:064x}"


def make_hash_event(run: str, banked: list[str], hit_every: int):
    """Request ``i`` and whether it should match; hashes made up front, so the generator only sends."""
    rng = random.Random(7)
    values = []
    for i in range(20_000):
        hit = bool(hit_every) and i % hit_every == 0
        values.append((flipped(rng.choice(banked), rng) if hit else f"{rng.getrandbits(256):064x}", hit))

    def make(i: int) -> loadgen.Request:
        value = values[i % len(values)][0]
        body = {"signal_type": "pdq", "value": value, "content_id": f"{run}-h{i}", "account_id": f"{run}-u{i % 1000}"}
        return loadgen.Request("/v1/scan", json.dumps(body).encode())

    return make, lambda i: values[i % len(values)][1]


def bank_hashes(server: Server, work: Path, hashes: list[str]) -> float:
    """A block bank holding ``hashes`` (``safehold bank import``); seconds it took."""
    start = time.perf_counter()
    server.cli("bank", "create", BANK)
    listing = work / "bank.txt"
    listing.write_text("\n".join(hashes) + "\n")
    server.cli("bank", "import", BANK, str(listing), "--format", "list", "--signal-type", "pdq")
    return round(time.perf_counter() - start, 1)


def check_store(database_url: str, run: str, acked: dict[str, set[int]], cases: set[int]) -> dict:
    """Distinct ids stored vs acknowledged, and the conversations' counters."""
    from sqlalchemy import create_engine, func, select

    from safehold.store.models import Case, Conversation, ConversationMessage, IngestedEvent

    engine = create_engine(database_url)
    with engine.connect() as c:
        msg_rows = c.scalar(
            select(func.count())
            .select_from(ConversationMessage)
            .where(ConversationMessage.message_id.like(f"{run}-m%"))
        )
        msg_ids = set(
            c.scalars(select(ConversationMessage.message_id).where(ConversationMessage.message_id.like(f"{run}-m%")))
        )
        counted = c.scalar(
            select(func.coalesce(func.sum(Conversation.messages), 0)).where(Conversation.external_id.like(f"{run}-c%"))
        )
        keys = {
            k.rsplit(":", 1)[1]
            for k in c.scalars(select(IngestedEvent.key).where(IngestedEvent.key.like(f"%:{run}-e%")))
        }
        stored_cases = c.scalar(select(func.count()).select_from(Case).where(Case.id.in_(cases))) if cases else 0
    engine.dispose()
    lost_messages = len({f"{run}-m{i}" for i in acked["messages"]} - msg_ids)
    lost_events = len({f"{run}-e{i}" for i in acked["events"]} - keys)
    return {
        "messages_acknowledged": len(acked["messages"]),
        "messages_stored": len(msg_ids),
        "message_rows": msg_rows,
        "conversation_counters": counted,
        "messages_lost": lost_messages,
        "events_acknowledged": len(acked["events"]),
        "events_stored": len(keys),
        "events_lost": lost_events,
        "hash_events_acknowledged": len(acked["hash_events"]),
        "hash_event_cases_answered": len(cases),
        "hash_event_cases_stored": stored_cases,
        "ok": lost_messages == 0
        and lost_events == 0
        and msg_rows == len(msg_ids) == counted
        and stored_cases == len(cases),
    }


def one_mode(args, mode: str, database_url: str | None) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"intake-{mode}-"))
    env = {"SAFEHOLD_GROUP_COMMIT_MS": str(args.group_commit_ms) if mode == "on" else "0"}
    url = database_url or f"sqlite:///{home / 'safehold.db'}"
    env["SAFEHOLD_DATABASE_URL"] = url
    env["SAFEHOLD_WEB_WORKERS"] = str(args.workers)  # API processes (safehold serve --workers)
    server = Server(home, env=env, log=home / "server.log")
    run = f"{mode}{int(time.time())}"
    acked: dict[str, set[int]] = {"messages": set(), "events": set(), "hash_events": set()}
    cases: set[int] = set()
    wrong: list[str] = []
    out: dict = {"group_commit_ms": float(env["SAFEHOLD_GROUP_COMMIT_MS"])}
    try:
        token = server.token("platform")
        doors = {
            "messages": (make_message(run, args.conversations), None),
            "events": (make_event(run, args.signal_every), None),
        }
        if "hash_events" in args.doors:
            out["bank_import_s"] = bank_hashes(server, home, banked := banked_hashes(args.bank_hashes))
            doors["hash_events"] = make_hash_event(run, banked, args.hit_every)
        # The server's CPU while idle (background polls: index and term-list sync, webhooks, upkeep), so each
        # run's CPU per item can also be given net of it: at a low rate that fixed cost is most of the figure.
        idle_cpu = loadgen.cpu_seconds(server.proc.pid)
        time.sleep(IDLE_SECONDS)
        out["idle_cpu_ms_per_s"] = idle_ms = round(
            (loadgen.cpu_seconds(server.proc.pid) - idle_cpu) * 1000 / IDLE_SECONDS, 2
        )
        for door in args.doors:
            make, hit = doors[door]

            def answered(i: int, status: int, body: bytes, door=door, hit=hit) -> None:
                if status != 200:
                    return
                acked[door].add(i)
                if hit is not None:  # a hash event: the verdict it should have, and a hit's case
                    answer = json.loads(body)
                    found = answer.get("cases", [])  # only where the scan recorded something: a hit's case
                    if answer["verdict"] != ("match" if hit(i) else "no_match") or len(found) != hit(i):
                        wrong.append(f"{i}: {body[:200]!r}")
                    cases.update(c["id"] for c in found)

            runs, best = loadgen.sweep(
                server.base, token, make, args.rates, args.seconds, pid=server.proc.pid, on_answer=answered
            )
            for r in runs:
                answered = sum(n for status, n in r["statuses"].items() if status.isdigit())
                if answered and "server_cpu_ms_per_request" in r:
                    net = r["server_cpu_ms_per_request"] - idle_ms * args.seconds / answered
                    r["server_cpu_ms_per_request_net_of_idle"] = round(net, 3)
            out[door] = {"best_rate_p99_50ms": best, "runs": runs}
            print(f"[{mode}] {door}: best {best}/s; {[(r['rate'], r['p99_ms']) for r in runs]}", flush=True)
        out["wrong_answers"] = {"count": len(wrong), "first": wrong[:5]}
    finally:
        server.stop()
    out["store"] = check_store(url, run, acked, cases)
    out["store"]["ok"] = out["store"]["ok"] and not wrong
    print(f"[{mode}] store: {out['store']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in a temporary home)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rates", default="250,500,1000,2000", help="comma-separated requests/s, swept lowest first")
    ap.add_argument("--conversations", type=int, default=1000)
    ap.add_argument("--modes", default="on,off", help="group commit on, off, or both")
    ap.add_argument("--group-commit-ms", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1, help="API processes (safehold serve --workers)")
    ap.add_argument("--signal-every", type=int, default=10, help="every Nth event carries a signal (opens a case)")
    ap.add_argument("--doors", default="messages,events,hash_events", help="which doors, in this order")
    ap.add_argument("--bank-hashes", type=int, default=100_000, help="PDQ hashes in the hash events' block bank")
    ap.add_argument("--hit-every", type=int, default=100, help="every Nth hash event matches the bank (a case)")
    ap.add_argument("--out", default=str(REPO / "bench/results/intake.json"))
    args = ap.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    args.doors = args.doors.split(",")
    result = {
        "machine": machine(),
        "database": "postgresql" if args.database_url else "sqlite",
        "seconds": args.seconds,
        "workers": args.workers,
        "rates": args.rates,
        "conversations": args.conversations,
        "signal_every": args.signal_every,
        "bank_hashes": args.bank_hashes,
        "hit_every": args.hit_every,
        "modes": {mode: one_mode(args, mode, args.database_url) for mode in args.modes.split(",")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
