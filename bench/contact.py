"""The contact policy: ``ContactService.check`` in process on one core, and ``POST /v1/interactions/check`` over HTTP.

- **in_process**: 10,000 accounts with age bands (55 % adult, 15 % unknown, 10 % each 16-17 and 13-15, 10 %
  under-13) and 50 of them with an open grooming case, on SQLite; the bands are cached first (every account checked
  once), then ``--checks`` checks of a realistic mix — kinds (message 55 %, follow 10 %, friend request 10 %,
  discover 10 %, call 5 %, media 10 %), a relationship on 40 % (prior conversation, mutual contacts, following),
  the sender's account creation time on half — on one pinned core. Checks/s and p50/p99 per check. The issue's
  target: ≥ 5,000 checks/s.
- **http**: the same accounts in the store of a real ``safehold serve`` (its own process, SQLite, and PostgreSQL
  with ``--postgres``), an API key of the ``platform`` role, one warm-up pass over every account (closed loop, one
  connection: the bands cached as in a server that has been running), then open-loop load at ``--rate``
  requests/s for ``--seconds`` from a load generator in another process; latency from each request's scheduled
  send time. Target: p99 ≤ 5 ms at 500/s. The control, in the same run on the same server: the search guard's
  ``POST /v1/search/check`` (the hot route the project already measured) at the same rate, so a shared machine's
  load shows as what it is.

Usage: ``.venv/bin/python bench/contact.py [--checks 200000] [--rate 500] [--seconds 30] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import httpx  # noqa: E402

from machine_info import machine  # noqa: E402
from server import Server, open_loop  # noqa: E402

BANDS = (("adult", 55), ("unknown", 15), ("16-17", 10), ("13-15", 10), ("under13", 10))
KINDS = (("message", 55), ("follow", 10), ("friend_request", 10), ("discover", 10), ("call", 5), ("media", 10))
ACCOUNTS = 10_000
GROOMERS = 50


def pick(rng: random.Random, weighted) -> str:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def seed_store(settings, rng: random.Random) -> list[str]:
    """``ACCOUNTS`` resolved bands written straight to the store (as the age book leaves them), and an open grooming
    case for ``GROOMERS`` of them."""
    from safehold.cases.detection import Detection, DetectionSignal
    from safehold.services import Services
    from safehold.store.models import AccountAge, utcnow

    svc = Services(settings, load_index=False)
    try:
        ids = [f"acct-{i:05d}" for i in range(ACCOUNTS)]
        with svc.db.session() as s:
            s.add_all(
                AccountAge(account_id=a, band=pick(rng, BANDS), rule="platform", resolved_at=utcnow()) for a in ids
            )
        for a in rng.sample(ids, GROOMERS):
            signal = DetectionSignal("grooming", category="grooming", confidence=0.9)
            svc.cases.record(Detection("grooming", account_id=a, signals=[signal]), "bench")
    finally:
        svc.close()
    return ids


def requests(ids: list[str], n: int, rng: random.Random) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    out = []
    for _ in range(n):
        body: dict = {"sender": rng.choice(ids), "recipient": rng.choice(ids), "kind": pick(rng, KINDS)}
        if rng.random() < 0.4:
            body["relationship"] = {
                "mutual_contacts": rng.choice((0, 1, 2, 3, 8)),
                "prior_conversation": rng.random() < 0.5,
                "recipient_follows_sender": rng.random() < 0.3,
            }
        if rng.random() < 0.5:
            body["sender_created_at"] = (now - dt.timedelta(days=rng.uniform(0, 2000))).isoformat()
        out.append(body)
    return out


def bench_in_process(checks: int, rng: random.Random) -> dict:
    from safehold.config import Settings
    from safehold.services import Services

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        ids = seed_store(settings, rng)
        svc = Services(settings, load_index=False)
        try:
            contact = svc.contact
            for a in ids:  # the bands cached, as in a process that has been answering
                contact.check(a, ids[0], "message")
            calls = []
            for b in requests(ids, checks, rng):
                rel = b.get("relationship", {})
                created = b.get("sender_created_at")
                calls.append(
                    (b["sender"], b["recipient"], b["kind"], rel, created and dt.datetime.fromisoformat(created))
                )
            lat = []
            decisions: dict[str, int] = {}
            start = time.perf_counter()
            for sender, recipient, kind, rel, created in calls:
                t = time.perf_counter()
                d = contact.check(sender, recipient, kind, sender_created_at=created, **rel)
                lat.append(time.perf_counter() - t)
                decisions[d["decision"]] = decisions.get(d["decision"], 0) + 1
            seconds = time.perf_counter() - start
        finally:
            svc.close()
    lat.sort()
    return {
        "accounts": ACCOUNTS,
        "checks": checks,
        "seconds": round(seconds, 3),
        "checks_per_second": round(checks / seconds),
        "p50_us": round(lat[len(lat) // 2] * 1e6, 1),
        "p99_us": round(lat[int(len(lat) * 0.99)] * 1e6, 1),
        "decisions": decisions,
    }


def _load(base: str, token: str, bodies: list[bytes], control: list[bytes], rate: int, seconds: float, out) -> None:
    """In its own process; sends the latencies (contact checks, then the control), or the failure as text (so the
    parent never waits forever)."""
    try:
        asyncio.run(open_loop(base, "/v1/interactions/check", token, bodies, rate, 2.0))  # warm the connections
        contact = asyncio.run(open_loop(base, "/v1/interactions/check", token, bodies, rate, seconds))
        out.send((contact, asyncio.run(open_loop(base, "/v1/search/check", token, control, rate, seconds))))
    except BaseException as exc:  # noqa: BLE001 - whatever it was, the parent reports it
        out.send(f"load generator failed: {exc!r}")


def bench_http(name: str, env: dict, rate: int, seconds: float, rng: random.Random) -> dict:
    from safehold.config import Settings

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), database_url=env.get("SAFEHOLD_DATABASE_URL"))
        ids = seed_store(settings, rng)
        server = Server(Path(home), env)
        try:
            token = server.token("platform")
            # Every account once as sender and as recipient: the server's band cache as after a while in service.
            with httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {token}"}) as client:
                for a, b in zip(ids[0::2], ids[1::2], strict=True):
                    client.post("/v1/interactions/check", json={"sender": a, "recipient": b, "kind": "message"})
            bodies = [json.dumps(b).encode() for b in requests(ids, 20_000, rng)]
            ctx = get_context("spawn")
            recv, send = ctx.Pipe(duplex=False)
            control = [json.dumps({"query": f"weather in town {i}"}).encode() for i in range(1000)]
            proc = ctx.Process(target=_load, args=(server.base, token, bodies, control, rate, seconds, send))
            proc.start()
            lat = recv.recv()
            proc.join()
            if isinstance(lat, str):
                raise SystemExit(lat)
        finally:
            server.stop()
    return {"backend": name, **summary(lat[0], rate, seconds), "control_search_check": summary(lat[1], rate, seconds)}


def summary(lat: list[float], rate: int, seconds: float) -> dict:
    lat = sorted(lat)
    at = lambda q: round(lat[min(len(lat) - 1, int(len(lat) * q))] * 1000, 2)  # noqa: E731
    return {"rate": rate, "seconds": seconds, "requests": len(lat), "p50_ms": at(0.5), "p99_ms": at(0.99),
            "max_ms": round(lat[-1] * 1000, 2)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checks", type=int, default=200_000)
    p.add_argument("--rate", type=int, default=500)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--postgres", help="PostgreSQL admin URL: also run the HTTP part on a scratch database there.")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/contact.json")
    args = p.parse_args()
    rng = random.Random(args.seed)
    result = {
        "benchmark": "contact policy",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "machine": machine(),
        "http": [bench_http("sqlite", {}, args.rate, args.seconds, rng)],
    }
    if args.postgres:
        from text_service import scratch_postgres

        url, drop = scratch_postgres(args.postgres)
        try:
            result["http"].append(
                bench_http("postgresql", {"SAFEHOLD_DATABASE_URL": url}, args.rate, args.seconds, rng)
            )
        finally:
            drop()
    # Last: it pins this process to one core.
    result["in_process"] = bench_in_process(args.checks, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
