"""The scaling curve: ``safehold serve --workers`` 1, 2 and 4 on PostgreSQL, open-loop load on a hash lookup and on
chat messages.

Per worker count and per route, an open-loop sweep (bench/loadgen.py ``sweep``) finds the highest rate whose run
had no error and a p99 within ``--p99-ms``; the server's CPU per request (its whole process tree) is read from
/proc. The routes, one item per request:

- **lookup**: ``POST /v1/scan`` with one PDQ hash sent by the platform, against a bank of ``--hashes`` random PDQ
  hashes (the hashes looked up are random too: misses, as nearly every upload of a real platform);
- **chat**: ``POST /v1/conversations/{id}/messages`` with one message, spread over ``--conversations`` chats.

"What one more core buys" is the gain in the highest rate from N to N+1 cores' worth of processes (on a 2-vCPU
machine, 1 -> 2 workers), beside the ceiling the CPU per request sets for one core (1,000 ms / CPU ms per
request). The database, load generator and server share the machine: the figures are for the whole system.

    python bench/scaling.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/safehold_scaling \\
        --workers 1 2 4 --seconds 20 --out bench/results/scaling.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
from machine_info import machine  # noqa: E402
from server import Server  # noqa: E402

BANK = "scaling"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/safehold_scaling"
LOOKUP_RATES = [250, 500, 1000, 1500, 2000, 3000, 4000]
CHAT_RATES = [250, 500, 1000, 1500, 2000, 3000, 4000]
WORDS = ("hey", "lol", "what", "are", "you", "doing", "later", "game", "school", "cool", "see", "ya", "ok", "nice")


def fresh_database(url: str) -> None:
    """Drop and create the database of ``url`` (the benchmark owns it)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def lookup(rng: random.Random):
    def make(i: int) -> loadgen.Request:
        body = {"signal_type": "pdq", "value": f"{rng.getrandbits(256):064x}", "content_id": f"up-{i}"}
        return loadgen.Request("/v1/scan", json.dumps(body).encode())

    return make


def chat(rng: random.Random, conversations: int, run: str):
    def make(i: int) -> loadgen.Request:
        cid = f"{run}-c{i % conversations}"
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
        message = {"id": f"{run}-m{i}", "author": f"{cid}-u{(i // conversations) % 2}", "text": text}
        return loadgen.Request(f"/v1/conversations/{cid}/messages", json.dumps({"messages": [message]}).encode())

    return make


def measure(server: Server, token: str, make, rates: list[float], args) -> dict:
    runs, best = loadgen.sweep(server.base, token, make, rates, args.seconds, p99_ms=args.p99_ms, pid=server.proc.pid)
    # The CPU per request at the best rate; when no rate kept the bound, at the lowest (the machine's cost anyway).
    at = next((r for r in runs if r["rate"] == best), runs[0] if runs else {})
    return {"best_rate": best, "server_cpu_ms_per_request": at.get("server_cpu_ms_per_request"), "runs": runs}


def gains(results: dict[str, dict], route: str) -> dict:
    """Highest rate per worker count, and what each step up bought."""
    curve = {n: r[route]["best_rate"] for n, r in results.items()}
    counts = sorted(curve, key=int)
    steps = {
        f"{a}->{b}": (curve[b] - curve[a]) if curve[a] is not None and curve[b] is not None else None
        for a, b in zip(counts, counts[1:], strict=False)
    }
    cpu = [r[route]["server_cpu_ms_per_request"] for r in results.values() if r[route]["server_cpu_ms_per_request"]]
    return {
        "best_rate_by_workers": curve,
        "gain_by_step": steps,
        "one_core_ceiling_per_s": round(1000 / min(cpu), 1) if cpu else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", default=DEFAULT_DB, help="PostgreSQL database (dropped and created)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="API process counts")
    ap.add_argument("--hashes", type=int, default=100_000, help="PDQ hashes in the bank")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per rate")
    ap.add_argument("--lookup-rates", type=float, nargs="+", default=LOOKUP_RATES)
    ap.add_argument("--chat-rates", type=float, nargs="+", default=CHAT_RATES)
    ap.add_argument("--conversations", type=int, default=1000, help="chats the messages are spread over")
    ap.add_argument("--p99-ms", type=float, default=50.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "scaling.json")
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    fresh_database(args.database_url)
    home = Path(tempfile.mkdtemp(prefix="safehold-scaling-"))
    env = {"SAFEHOLD_DATABASE_URL": args.database_url}
    hashes = home / "bank.txt"
    hashes.write_text("".join(f"{rng.getrandbits(256):064x}\n" for _ in range(args.hashes)))
    results: dict[str, dict] = {}
    started = time.monotonic()
    for n in args.workers:
        server = Server(home, env=env | {"SAFEHOLD_WEB_WORKERS": str(n)}, log=home / f"server-{n}.log")
        try:
            if hashes.exists():  # the first server's store: the bank, imported once
                server.cli("bank", "create", BANK)
                server.cli("bank", "import", BANK, str(hashes), "--format", "list", "--signal-type", "pdq")
                hashes.unlink()
                time.sleep(2)  # the index has the import
            token = server.token("platform")
            loadgen.run_sync(server.base, token, lookup(rng), 100, 3)  # every process warm
            results[str(n)] = {
                "lookup": measure(server, token, lookup(rng), args.lookup_rates, args),
                "chat": measure(server, token, chat(rng, args.conversations, f"w{n}"), args.chat_rates, args),
            }
        finally:
            server.stop()
        print(json.dumps({n: {k: v["best_rate"] for k, v in results[str(n)].items()}}), flush=True)
    result = {
        "benchmark": "scaling",
        "machine": machine(),
        "params": vars(args) | {"out": str(args.out), "database_url": "postgresql"},
        "minutes": round((time.monotonic() - started) / 60, 1),
        "by_workers": results,
        "lookup": gains(results, "lookup"),
        "chat": gains(results, "chat"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("lookup", "chat")}, indent=2))


if __name__ == "__main__":
    main()
