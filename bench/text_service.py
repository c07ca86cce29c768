"""Text safety as a service: the stored, served parts of Principles 3, 4 and 9, through the real HTTP API.

- **conversations**: ``POST /v1/conversations/{id}/messages`` on ``safehold serve``; generated two-person chats
  (``--messages`` each, 5 % of messages carrying a grooming cue line), streamed one message per request by
  ``--clients`` concurrent clients (each owning its conversations, as a platform's chat shards would), and the same
  conversations sent again in batches of ``--batch`` messages. Messages/s and p50/p99 per request; alerts raised
  and cases opened; then every message is re-sent (a retry storm) to check that none is counted twice.
- **posts**: ``POST /v1/text/check`` on generated posts (5 % carrying a solicitation pattern), posts/s, p50/p99.
- **reload**: a generated ``--terms``-term list imported with ``PUT /v1/terms/{name}`` on server A; the time the
  import takes (parse, store, rebuild A's detectors) and the time until server B — a second process on the same
  database, which polls for changes — blocks a query that only the new list blocks.

Each part runs on the embedded SQLite store and, with ``--postgres URL`` (an admin URL; a scratch database is
created and dropped), on PostgreSQL. No peer: Microsoft's Project Artemis (the only published grooming-detection
service) is licensed privately, and HMA has no text detection.

Usage: ``.venv/bin/python bench/text_service.py [--postgres postgresql://postgres@127.0.0.1:5432/postgres]``
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import random
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

from machine_info import cpu_model  # noqa: E402
from server import Server  # noqa: E402
from text import chat_line, word  # noqa: E402

SOLICITING = (
    "selling new folders, dm on telegram t.me/{w}",
    "trading vids, pay with $ {w}cash, kik: {w}",
    "looking to trade pics of young kids, add me wickr @{w}",
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))] * 1000, 2)


def rate(n: int, seconds: float, lat: list[float], unit: str) -> dict:
    return {unit: n, "seconds": round(seconds, 3), f"{unit}_per_s": round(n / seconds, 1),
            "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}  # fmt: skip


def conversations(n: int, length: int, rng: random.Random) -> dict[str, list[dict]]:
    out = {}
    for c in range(n):
        cid = f"chat-{c}"
        out[cid] = [{"id": f"{cid}-m{i}", "author": f"{cid}-u{i % 2}", "text": chat_line(rng)} for i in range(length)]
    return out


def bench_conversations(server: Server, convs: dict[str, list[dict]], clients: int, batch: int) -> dict:
    headers = server.key("platform")

    def stream(ids: list[str], prefix: str, size: int) -> tuple[list[float], int]:
        lat, alerts = [], 0
        with httpx.Client(base_url=server.base, headers=headers, timeout=60) as http:
            for cid in ids:
                msgs = convs[cid]
                for i in range(0, len(msgs), size):
                    t = time.perf_counter()
                    r = http.post(f"/v1/conversations/{prefix}{cid}/messages", json={"messages": msgs[i : i + size]})
                    lat.append(time.perf_counter() - t)
                    if r.status_code != 200:
                        raise SystemExit(f"{r.status_code}: {r.text}")
                alerts += bool(r.json()["assessment"]["alert"])
        return lat, alerts

    def run(prefix: str, size: int) -> dict:
        ids = list(convs)
        shards = [ids[k::clients] for k in range(clients)]
        start = time.perf_counter()
        with cf.ThreadPoolExecutor(clients) as pool:
            done = list(pool.map(lambda shard: stream(shard, prefix, size), shards))
        seconds = time.perf_counter() - start
        lat = [x for d, _ in done for x in d]
        messages = sum(len(m) for m in convs.values())
        out = rate(messages, seconds, lat, "messages")
        out.update(requests=len(lat), clients=clients, messages_per_request=size,
                   conversations_alerted=sum(a for _, a in done))  # fmt: skip
        return out

    single = run("s-", 1)
    batched = run("b-", batch)
    retry = run("s-", batch)  # every message again: all duplicates
    admin = server.key("admin")
    with httpx.Client(base_url=server.base, headers=admin, timeout=60) as http:
        listed = http.get("/v1/conversations", params={"limit": 500}).json()["conversations"]
        cases = http.get("/v1/cases", params={"queue": "text", "limit": 500}).json()
    counted = {c["conversation_id"]: c["messages"] for c in listed if c["conversation_id"].startswith("s-")}
    expected = {f"s-{cid}": len(m) for cid, m in convs.items()}
    return {
        "conversations": len(convs),
        "messages_each": len(next(iter(convs.values()))),
        "one_message_per_request": single,
        "batched": batched,
        "retry_of_every_message": {**retry, "double_counted": sum(counted.get(k, 0) != v for k, v in expected.items())},
        "text_cases_open": cases["total"],
    }


def bench_posts(server: Server, n: int, rng: random.Random) -> dict:
    headers = server.key("platform")
    posts = []
    for i in range(n):
        text = " ".join(word(rng) for _ in range(rng.randint(10, 40)))
        if rng.random() < 0.05:
            text += " " + rng.choice(SOLICITING).format(w=word(rng))
        posts.append({"text": text, "kind": "post", "content_id": f"post-{i}"})
    lat, cases = [], 0
    with httpx.Client(base_url=server.base, headers=headers, timeout=60) as http:
        start = time.perf_counter()
        for body in posts:
            t = time.perf_counter()
            r = http.post("/v1/text/check", json=body)
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"{r.status_code}: {r.text}")
            cases += r.json()["case"] is not None
        seconds = time.perf_counter() - start
    return {**rate(n, seconds, lat, "posts"), "cases_opened": cases}


def term_list(n: int, rng: random.Random) -> tuple[str, str]:
    """A CSV of ``n`` generated two-word terms (severity 2, category ``sexual``) plus one ``csam`` probe term."""
    rows = {f"{word(rng)} {word(rng)}" for _ in range(n)}
    probe = f"probe{uuid.uuid4().hex[:8]} marker"
    lines = ["term,category,severity", f"{probe},csam,3"] + [f"{t},sexual,2" for t in sorted(rows)[: n - 1]]
    return "\n".join(lines) + "\n", probe


def bench_reload(a: Server, b: Server, n: int, rng: random.Random) -> dict:
    csv, probe = term_list(n, rng)
    admin, platform_key = a.key("admin"), a.key("platform")
    with httpx.Client(timeout=120) as http:
        check = {"query": probe}
        assert http.post(b.base + "/v1/search/check", json=check, headers=platform_key).json()["action"] == "allow"
        t = time.perf_counter()
        r = http.put(a.base + "/v1/terms/bench_list", files={"file": ("bench.csv", csv)}, headers=admin)
        imported = time.perf_counter() - t
        if r.status_code != 200:
            raise SystemExit(f"{r.status_code}: {r.text}")
        on_a = http.post(a.base + "/v1/search/check", json=check, headers=platform_key).json()["action"]
        polls = 0
        while http.post(b.base + "/v1/search/check", json=check, headers=platform_key).json()["action"] != "block":
            polls += 1
            if time.perf_counter() - t > 120:
                raise SystemExit("server B never picked up the new list")
            time.sleep(0.01)
        propagated = time.perf_counter() - t
        # Search latency on B right after the swap (the new automaton is in place).
        lat = []
        for i in range(500):
            s = time.perf_counter()
            http.post(b.base + "/v1/search/check", json={"query": f"{word(rng)} {i}"}, headers=platform_key)
            lat.append(time.perf_counter() - s)
    return {
        "terms": n,
        "csv_bytes": len(csv.encode()),
        "import_seconds_on_a": round(imported, 3),
        "blocked_on_a_at_once": on_a == "block",
        "seconds_until_b_blocks": round(propagated, 3),
        "b_polls": polls,
        "b_search_p50_ms_after": pct(lat, 0.5),
        "b_search_p99_ms_after": pct(lat, 0.99),
    }


def run_backend(name: str, env: dict, args, rng: random.Random) -> dict:
    with tempfile.TemporaryDirectory() as home:
        a = Server(Path(home) / "a", env)
        b = None
        try:
            out = {"backend": name}
            out["conversations"] = bench_conversations(
                a, conversations(args.conversations, args.messages, rng), args.clients, args.batch
            )
            out["posts"] = bench_posts(a, args.posts, rng)
            shared = dict(env) or {"SAFEHOLD_DATABASE_URL": f"sqlite:///{Path(home) / 'a' / 'safehold.db'}"}
            b = Server(Path(home) / "b", shared)
            out["reload"] = bench_reload(a, b, args.terms, rng)
            return out
        finally:
            a.stop()
            if b is not None:
                b.stop()


def scratch_postgres(admin_url: str):
    import psycopg

    name = f"safehold_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--messages", type=int, default=40)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--posts", type=int, default=2000)
    p.add_argument("--terms", type=int, default=100_000)
    p.add_argument("--postgres", help="PostgreSQL admin URL; also run every part on a scratch database there.")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/text_service.json")
    args = p.parse_args()
    rng = random.Random(args.seed)
    runs = [run_backend("sqlite", {}, args, rng)]
    if args.postgres:
        url, drop = scratch_postgres(args.postgres)
        try:
            runs.append(run_backend("postgresql", {"SAFEHOLD_DATABASE_URL": url}, args, rng))
        finally:
            drop()
    result = {
        "benchmark": "text safety service (real server over HTTP)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
