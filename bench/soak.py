"""Soak: a real ``safehold serve`` with Celery workers on a private PostgreSQL and Redis (bench/private_services.py)
under open-loop load for an hour, with a bank change every second; then proof that nothing was lost or done twice.

The load (bench/loadgen.py, one item per request, platform key) mixes, per 10 requests:

- 7 chat messages (``POST /v1/conversations/{id}/messages``, a unique message id each, 200 conversations);
- 2 hash scans with a subject (``POST /v1/scan`` ``{signal_type: md5, value, content_id, account_id}``): every
  tenth hits the ``soak`` block bank (``on_match: auto``), which opens a case, runs the ``soak-auto`` policy and
  queues a webhook delivery that a Celery worker sends to a receiver in this process;
- 1 content event (``POST /v1/events``, a unique ``Idempotency-Key``); every fifth carries a signal and opens a case.

Meanwhile an admin adds an MD5 to the ``soak-live`` bank every second, or removes one added two seconds earlier
(ticks 0, 1 add, tick 2 removes tick 0's, …), and the RSS of every Safehold process is sampled every 10 s.

At the end the store is read directly: every acknowledged message id is stored exactly once; every acknowledged
event key once; every acknowledged case-opening item has exactly one case with one signal; every hit one action
and one delivered webhook (the receiver saw its idempotency key); the conversations' message counters add up;
and every present ``soak-live`` hash matches and every removed one does not (a removal that got no answer is
checked neither way: the server may have carried it out after the client gave up).

    python bench/soak.py --peak 1000 --minutes 60             # the soak: 500 requests/s for an hour
    python bench/soak.py --rate 50 --minutes 3 --out bench/results/soak_dev.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.server
import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import psycopg

import loadgen
from machine_info import machine
from private_services import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from server import Server

RESULTS = Path(__file__).parent / "results"
CONVERSATIONS = 200
HITS = 100  # MD5s in the soak bank
KINDS = ("chat", "scan", "event")


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# ------------------------------------------------------------------------------------------- processes


class Receiver:
    """The platform's webhook receiver: answers 200 and counts each ``Safehold-Idempotency-Key`` it gets. With
    ``delay`` it takes that many seconds per delivery, so that a worker killed mid-run is likely to be sending one."""

    def __init__(self, delay: float = 0.0):
        self.keys: Counter = Counter()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay)
                receiver.keys[self.headers.get("Safehold-Idempotency-Key")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


class Stack:
    """``safehold serve`` and Celery workers (one of them with the beat) on a private PostgreSQL and Redis, in
    ``work`` (home and logs)."""

    def __init__(self, work: Path, pg: PrivatePostgres, redis: PrivateRedis, workers: int = 2, concurrency: int = 4):
        self.work, self.pg, self.redis, self.concurrency = work, pg, redis, concurrency
        self.home = work / "home"
        self.env = {
            "SAFEHOLD_DATABASE_URL": pg.url,
            "SAFEHOLD_TASKS": "celery",
            "SAFEHOLD_REDIS_URL": redis.url,
            "SAFEHOLD_TASK_VISIBILITY_TIMEOUT": "30",  # a killed worker's task comes back within the run
        }
        self.server = Server(self.home, self.env, log=work / "server.log")
        self.workers: dict[str, subprocess.Popen] = {}
        self.started = 0
        for i in range(workers):
            self.start_worker(beat=i == 0)

    def start_worker(self, beat: bool = False) -> str:
        self.started += 1
        name = f"worker{self.started}" + ("-beat" if beat else "")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "safehold", "worker", "--concurrency", str(self.concurrency),
             "--hostname", f"{name}@soak", *(["--beat"] if beat else [])],
            env=self.server.env, stdout=subprocess.DEVNULL,
            stderr=open(self.work / f"{name}.log", "ab"),  # noqa: SIM115 (the child keeps it)
        )  # fmt: skip
        return name

    def kill_worker(self, name: str) -> str:
        """SIGKILL worker ``name`` and start another in its place (with the beat if it had it); the new name."""
        proc = self.workers.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return self.start_worker(beat=name.endswith("-beat"))

    def kill_server(self) -> float:
        """SIGKILL the API server and start it again on the same port; seconds until it answered its health."""
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(timeout=30)
        if self.server._log:
            self.server._log.close()
        began = time.monotonic()
        self.server = Server(self.home, self.env, log=self.work / "server.log", port=self.server.port)
        return time.monotonic() - began

    def rss(self) -> dict[str, float]:
        out = {"server": loadgen.rss_mb(self.server.proc.pid)}
        out.update({name: loadgen.rss_mb(proc.pid) for name, proc in self.workers.items()})
        return out

    def stop(self) -> None:
        for proc in self.workers.values():
            proc.terminate()
        for proc in self.workers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.server.stop()


# ------------------------------------------------------------------------------------------------ load


class Load:
    """Makes the requests, keeps what was acknowledged, and (with ``retry``) sends again, with the same ids and
    keys, every request that failed or went unanswered — as a platform does."""

    def __init__(self, run_id: str, platform: str, retry: bool):
        self.run, self.token, self.retry = run_id, platform, retry
        self.next = dict.fromkeys(KINDS, 0)
        self.acks = {kind: bytearray() for kind in KINDS}  # acknowledgements per item number
        self.pending: list[tuple[str, int]] = []  # to send again
        self.inflight: dict[int, tuple[str, int, float]] = {}  # slot → (kind, n, scheduled)
        self.slot = 0  # requests made so far
        self.t0 = time.perf_counter()
        # Per answer: scheduled time (s since t0), latency (s), status (0: no answer).
        self.at, self.latency, self.status = array("d"), array("d"), array("i")
        self.chat_duplicates = 0  # first answers that already called a message a duplicate
        self.retries = 0

    def request(self, kind: str, n: int) -> loadgen.Request:
        run = self.run
        if kind == "chat":
            conv = n % CONVERSATIONS
            body = {"id": f"{run}-m{n}", "author": f"u{conv}-{n % 2}", "sent_at": "2026-12-01T10:00:00Z",
                    "text": f"see you at practice tomorrow, bring the ball ({n})"}  # fmt: skip
            return loadgen.Request(f"/v1/conversations/{run}-c{conv}/messages", json.dumps(body).encode())
        if kind == "scan":
            value = md5(f"{run}-hit-{n // 10 % HITS}") if n % 10 == 0 else md5(f"{run}-scan-{n}")
            body = {"signal_type": "md5", "value": value, "content_id": f"{run}-s{n}", "account_id": f"a{n % 997}"}
            return loadgen.Request("/v1/scan", json.dumps(body).encode())
        event = {"type": "content", "idempotency_key": f"{run}-e{n}", "account": {"id": f"a{n % 997}"},
                 "content": {"id": f"{run}-e{n}", "media_type": "text", "text": "a post about football"}}  # fmt: skip
        if n % 5 == 0:
            event["signals"] = [{"source": "user_report", "category": "other", "confidence": 0.4}]
        return loadgen.Request("/v1/events", json.dumps(event).encode())

    def make(self, slot: int) -> loadgen.Request:
        """Request number ``slot`` of the whole run: a retry owed if any, else the next item of the mix."""
        if self.pending:
            kind, n = self.pending.pop(0)
            self.retries += 1
        else:
            kind = KINDS[0] if slot % 10 < 7 else KINDS[1] if slot % 10 < 9 else KINDS[2]
            n = self.next[kind]
            self.next[kind] += 1
            self.acks[kind].append(0)
        self.inflight[slot] = (kind, n, time.perf_counter())
        return self.request(kind, n)

    def answer(self, slot: int, status: int, body: bytes) -> None:
        kind, n, due = self.inflight.pop(slot)
        now = time.perf_counter()
        self._record(due, now - due, status)
        if 200 <= status < 300:
            if self.acks[kind][n] < 255:
                self.acks[kind][n] += 1
            if kind == "chat" and self.acks[kind][n] == 1 and json.loads(body).get("duplicates"):
                self.chat_duplicates += 1
        elif self.retry:
            self.pending.append((kind, n))

    def _record(self, due: float, latency: float, status: int) -> None:
        self.at.append(due - self.t0)
        self.latency.append(latency)
        self.status.append(status)

    def unanswered(self, slots: range) -> int:
        """Count the requests of a finished run (``slots``) that got no answer (timeout, connection), queueing them
        again."""
        lost = [slot for slot in slots if slot in self.inflight]
        for slot in lost:
            kind, n, due = self.inflight.pop(slot)
            self._record(due, 0.0, 0)
            if self.retry:
                self.pending.append((kind, n))
        return len(lost)

    async def open_loop(self, base: str, rate: float, seconds: float, timeout: float = 10.0) -> loadgen.Result:
        """One open-loop run; its requests are the slots after the previous run's."""
        slots = range(self.slot, self.slot + int(rate * seconds))
        self.slot = slots.stop
        result = await loadgen.run(
            base,
            self.token,
            lambda i: self.make(slots.start + i),
            rate,
            seconds,
            timeout=timeout,
            on_answer=lambda i, status, body: self.answer(slots.start + i, status, body),
        )
        self.unanswered(slots)
        return result

    async def chunks(self, base: Callable[[], str], rate: float, seconds: float, chunk: float, timeout: float) -> None:
        """Runs of ``chunk`` seconds back to back for ``seconds`` — each starts on time while the one before still
        waits for its last answers — so that requests left unanswered are sent again soon (with ``retry``), to the
        server at ``base()`` then."""
        began, runs = time.perf_counter(), []
        for k in range(max(1, round(seconds / chunk))):
            await asyncio.sleep(max(0.0, began + k * chunk - time.perf_counter()))
            runs.append(asyncio.create_task(self.open_loop(base(), rate, min(chunk, seconds - k * chunk), timeout)))
        await asyncio.gather(*runs)

    def windows(self, width: float) -> list[dict]:
        """Latency percentiles and failures per ``width`` seconds of scheduled time."""
        buckets: dict[int, list[float]] = {}
        failed: Counter = Counter()
        for at, latency, status in zip(self.at, self.latency, self.status, strict=True):
            key = int(at // width)
            if 200 <= status < 300:
                buckets.setdefault(key, []).append(latency)
            else:
                failed[key] += 1
                buckets.setdefault(key, [])
        out = []
        for key in sorted(buckets):
            ordered = sorted(buckets[key])

            def pct(q: float, ordered=ordered) -> float | None:
                return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 2) if ordered else None

            out.append({"from_s": key * width, "answered_2xx": len(ordered), "failed": failed[key],
                        "p50_ms": pct(50), "p99_ms": pct(99), "p999_ms": pct(99.9),
                        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None})  # fmt: skip
        return out

    def statuses(self) -> dict[str, int]:
        return {("no_answer" if s == 0 else str(s)): n for s, n in sorted(Counter(self.status).items())}


# ------------------------------------------------------------------------------------------- the banks


class Banks:
    """The admin side: the soak bank, policy and webhook, and the ``soak-live`` bank changed every second."""

    def __init__(self, base: str, admin: str, run: str, receiver: str):
        self.base, self.headers, self.run = base, {"Authorization": f"Bearer {admin}"}, run
        self.present: dict[int, int] = {}  # tick → entry id of hashes added and not removed
        self.removed: list[int] = []
        self.ambiguous: set[int] = set()  # adds that were retried: one may have been stored twice
        #: hashes whose removal got no answer (and was not retried): the server may have removed them after the
        #: client gave up, so they are checked neither as present nor as removed
        self.unanswered: list[int] = []
        self.changes, self.failures = 0, Counter()
        self.looked_up = 0  # hashes looked up (the scan counters count them too)
        with httpx.Client(base_url=base, headers=self.headers, timeout=30) as http:
            for body in ({"name": "soak", "kind": "block", "on_match": "auto"}, {"name": "soak-live"}):
                http.post("/v1/banks", json=body).raise_for_status()
            for k in range(HITS):
                entry = {"signal_type": "md5", "value": md5(f"{run}-hit-{k}"), "category": "csam"}
                http.post("/v1/banks/soak/entries", json=entry).raise_for_status()
            policy = {"name": "soak-auto", "trigger": "auto", "match": {"bank": "soak"}, "actions": ["remove_content"]}
            http.post("/v1/policies", json=policy).raise_for_status()
            http.post("/v1/webhooks", json={"name": "soak", "url": receiver, "events": ["remove_content"]})
        self.wait_matches([md5(f"{run}-hit-{HITS - 1}")], "soak")

    def value(self, tick: int) -> str:
        return md5(f"{self.run}-live-{tick}")

    async def change(self, http: httpx.AsyncClient, tick: int, retry: bool) -> None:
        """Tick ``tick``'s change: add its hash, or (every third tick) remove the one added two ticks earlier."""
        attempts = 0
        while True:
            attempts += 1
            try:
                if tick % 3 == 2:
                    entry = self.present.get(tick - 2)
                    if entry is None:
                        return
                    answer = await http.delete(f"/v1/entries/{entry}")
                    if answer.status_code < 300 or (attempts > 1 and answer.status_code == 404):
                        del self.present[tick - 2]
                        self.removed.append(tick - 2)
                        self.changes += 1
                        return
                else:
                    body = {"signal_type": "md5", "value": self.value(tick), "source": "soak"}
                    answer = await http.post("/v1/banks/soak-live/entries", json=body)
                    if answer.status_code < 300:
                        self.present[tick] = answer.json()["id"]
                        if attempts > 1:
                            self.ambiguous.add(tick)
                        self.changes += 1
                        return
                self.failures[str(answer.status_code)] += 1
            except httpx.HTTPError as exc:
                self.failures[type(exc).__name__] += 1
                if tick % 3 == 2 and not retry:
                    del self.present[tick - 2]
                    self.unanswered.append(tick - 2)
            if not retry:
                return
            await asyncio.sleep(0.5)

    async def every_second(self, seconds: float, retry: bool, base: Callable[[], str]) -> None:
        began = time.monotonic()
        tick = 0
        async with httpx.AsyncClient(headers=self.headers, timeout=10) as http:
            while (due := began + tick) < began + seconds:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                http.base_url = base()
                await self.change(http, tick, retry)
                tick += 1

    def lookup(self, values: list[str], bank: str) -> list[bool]:
        """Whether each MD5 matches ``bank`` now (``/v1/scan/batch`` lookups, 1,000 at a time)."""
        out = []
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=60) as http:
            for i in range(0, len(values), 1000):
                items = [{"signal_type": "md5", "value": v} for v in values[i : i + 1000]]
                answer = http.post("/v1/scan/batch", json={"items": items})
                answer.raise_for_status()
                results = answer.json()["results"]
                self.looked_up += len(items)
                out += [any(m["bank"] == bank for m in r.get("matches") or []) for r in results]
        return out

    def wait_matches(self, values: list[str], bank: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not all(self.lookup(values, bank)):
            if time.monotonic() > deadline:
                raise SystemExit(f"the {bank} bank's hashes never matched")
            time.sleep(0.5)

    def verify(self, seconds: float = 20) -> dict:
        """Every present hash matches, every removed one does not (waiting up to ``seconds`` for the index)."""
        present = sorted(self.present)
        removed = [t for t in self.removed if t not in self.ambiguous]
        deadline = time.monotonic() + seconds
        while True:
            hits = self.lookup([self.value(t) for t in present + removed], "soak-live")
            missing = sum(1 for ok in hits[: len(present)] if not ok)
            stale = sum(1 for ok in hits[len(present) :] if ok)
            if (missing == stale == 0) or time.monotonic() > deadline:
                break
            time.sleep(1)
        last_added = max(present) if present else None
        return {
            "changes": self.changes, "failures": dict(self.failures), "present": len(present),
            "removed": len(removed), "present_not_matching": missing, "removed_still_matching": stale,
            "ambiguous_adds": len(self.ambiguous), "unanswered_removals": len(self.unanswered),
            "last_added_matches": bool(last_added is not None and hits[present.index(last_added)]),
            "last_removed_matches": bool(removed and hits[len(present) + len(removed) - 1]),
            "lookups": len(present) + len(removed),
        }  # fmt: skip


# ---------------------------------------------------------------------------------------- verification


def verify_store(pg_url: str, load: Load, receiver: Receiver, wait: float = 120) -> dict:
    """Read the store: lost (acknowledged, not stored) and duplicated items per kind, counters, and the background
    work (actions, webhook deliveries) — waiting up to ``wait`` seconds for the workers to deliver."""
    run = load.run
    acked = {kind: {n for n, c in enumerate(load.acks[kind]) if c} for kind in KINDS}
    sent = {kind: len(load.acks[kind]) for kind in KINDS}
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as db:

        def numbers(sql: str, prefix: str) -> Counter:
            return Counter(int(row[0].rsplit(prefix, 1)[1]) for row in db.execute(sql, (f"{run}-%",)))

        messages = numbers("SELECT message_id FROM conversation_messages WHERE message_id LIKE %s", "-m")
        counted = int(db.execute("SELECT coalesce(sum(messages), 0) FROM conversations WHERE external_id LIKE %s",
                                 (f"{run}-%",)).fetchone()[0])  # fmt: skip
        events = numbers("SELECT split_part(key, ':', 2) FROM ingested_events WHERE split_part(key, ':', 2) LIKE %s",
                         "-e")  # fmt: skip
        cases = {
            prefix: numbers(
                f"SELECT content_id FROM cases WHERE content_id LIKE %s AND content_id LIKE '%%-{prefix}%%'",
                f"-{prefix}",
            )  # fmt: skip
            for prefix in ("s", "e")
        }
        signals = {
            prefix: numbers("SELECT c.content_id FROM case_signals s JOIN cases c ON c.id = s.case_id "
                            f"WHERE c.content_id LIKE %s AND c.content_id LIKE '%%-{prefix}%%'", f"-{prefix}")
            for prefix in ("s", "e")
        }  # fmt: skip
        actions = numbers("SELECT c.content_id FROM case_actions a JOIN cases c ON c.id = a.case_id "
                          "WHERE c.content_id LIKE %s AND a.kind = 'remove_content'", "-s")  # fmt: skip
        deadline = time.monotonic() + wait
        while True:
            deliveries = dict(db.execute("SELECT status, count(*) FROM webhook_deliveries GROUP BY status").fetchall())
            if set(deliveries) <= {"delivered"} or time.monotonic() > deadline:
                break
            time.sleep(2)
        delivered_keys = {row[0] for row in db.execute(
            "SELECT idempotency_key FROM webhook_deliveries WHERE status = 'delivered'")}  # fmt: skip
        per_action = Counter(row[0] for row in db.execute("SELECT action_id FROM webhook_deliveries"))

    def exact(expected: set[int], stored: Counter) -> dict:
        return {"expected": len(expected), "stored": len(stored),
                "lost": len(expected - set(stored)), "duplicated": sum(1 for c in stored.values() if c > 1),
                "stored_unacknowledged": len(set(stored) - expected)}  # fmt: skip

    hits = {n for n in acked["scan"] if n % 10 == 0}
    flagged = {n for n in acked["event"] if n % 5 == 0}
    received = Counter({k: c for k, c in receiver.keys.items() if k in delivered_keys})
    out = {
        "sent": sent,
        "acknowledged": {kind: len(acked[kind]) for kind in KINDS},
        "acknowledged_twice": {kind: sum(1 for c in load.acks[kind] if c > 1) for kind in KINDS},
        "chat_messages": exact(acked["chat"], messages),
        "chat_answered_duplicate_on_first_ack": load.chat_duplicates,
        "conversation_counter": {
            "sum_of_messages": counted,
            "message_ids": len(messages),
            "consistent": counted == len(messages),
        },  # fmt: skip
        "events": exact(acked["event"], events),
        "event_cases": exact(flagged, cases["e"]),
        "event_case_signals": exact(flagged, signals["e"]),
        "scan_hit_cases": exact(hits, cases["s"]),
        "scan_hit_signals": exact(hits, signals["s"]),
        "scan_hit_actions": exact(hits, actions),
        "webhook_deliveries": {
            "by_status": deliveries,
            "actions_with_two_deliveries": sum(1 for c in per_action.values() if c > 1),
            "delivered_not_received": len(delivered_keys - set(received)),
            "received_more_than_once": sum(1 for c in received.values() if c > 1),
        },  # fmt: skip
    }
    checks = [out[k] for k in ("chat_messages", "events", "event_cases", "event_case_signals", "scan_hit_cases",
                               "scan_hit_signals", "scan_hit_actions")]  # fmt: skip
    out["lost"] = sum(c["lost"] for c in checks)
    out["duplicated"] = sum(c["duplicated"] for c in checks) + out["webhook_deliveries"]["actions_with_two_deliveries"]
    out["background_complete"] = (
        set(deliveries) <= {"delivered"} and out["webhook_deliveries"]["delivered_not_received"] == 0
        and deliveries.get("delivered", 0) == len(cases["s"])
    )  # fmt: skip
    out["ok"] = (out["lost"] == 0 and out["duplicated"] == 0 and out["conversation_counter"]["consistent"]
                 and out["background_complete"])  # fmt: skip
    return out


def scan_counter(pg_url: str) -> int:
    """Scans counted by the API (the counters are flushed when the server stops)."""
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as db:
        return int(db.execute("SELECT coalesce(sum(count), 0) FROM scan_counts WHERE channel = 'api'").fetchone()[0])


def slope_per_hour(series: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    if len(series) < 3:
        return None
    n = len(series)
    mx = sum(t for t, _ in series) / n
    my = sum(v for _, v in series) / n
    var = sum((t - mx) ** 2 for t, _ in series)
    return round(sum((t - mx) * (v - my) for t, v in series) / var * 3600, 2) if var else None


def rss_report(samples: list[tuple[float, dict[str, float]]], warmup: float) -> dict:
    """Per process: its RSS series, and the slope over the whole run and after ``warmup`` seconds."""
    names = sorted({name for _, row in samples for name in row})
    out = {}
    for name in names:
        series = [(round(t, 1), row[name]) for t, row in samples if name in row and row[name]]
        steady = [(t, v) for t, v in series if t >= warmup]
        out[name] = {"series": series, "slope_mb_per_hour": slope_per_hour(series),
                     "slope_after_warmup_mb_per_hour": slope_per_hour(steady),
                     "first_mb": series[0][1] if series else None, "last_mb": series[-1][1] if series else None,
                     "max_mb": max((v for _, v in series), default=None)}  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------ main


async def _soak(stack: Stack, load: Load, banks: Banks, rate: float, seconds: float, every: float, samples: list):
    """The load, the bank changes and the RSS sampler side by side."""
    began = time.monotonic()

    async def sample() -> None:
        while time.monotonic() - began < seconds + 5:
            samples.append((time.monotonic() - began, await asyncio.to_thread(stack.rss)))
            await asyncio.sleep(every)

    sampler = asyncio.create_task(sample())
    changer = asyncio.create_task(banks.every_second(seconds, False, lambda: stack.server.base))
    result = await load.open_loop(stack.server.base, rate, seconds)
    await changer
    sampler.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peak", type=float, help="the peak rate of this mix measured on the machine (requests/s)")
    parser.add_argument("--rate", type=float, help="requests/s (default: half of --peak)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=300.0, help="seconds per latency window")
    parser.add_argument("--rss-every", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    if not (args.rate or args.peak):
        parser.error("give --peak (the soak runs at half of it) or --rate")
    rate = args.rate or args.peak / 2
    seconds = args.minutes * 60
    run = secrets.token_hex(3)
    samples: list = []
    with TemporaryDirectory(prefix="safehold-soak-") as tmp, private_postgres() as pg, private_redis() as redis:
        work = Path(tmp)
        receiver = Receiver()
        stack = Stack(work, pg, redis, workers=args.workers)
        try:
            admin, platform = stack.server.token("admin"), stack.server.token("platform")
            banks = Banks(stack.server.base, admin, run, receiver.url)
            load = Load(run, platform, retry=False)
            print(f"soak: {rate:g} requests/s for {args.minutes:g} min on {pg.url}", file=sys.stderr)
            result = asyncio.run(_soak(stack, load, banks, rate, seconds, args.rss_every, samples))
            bank_check = banks.verify()
            store = verify_store(pg.url, load, receiver)
            restarts = {"server": stack.server.proc.poll() is not None,
                        "workers": {n: p.poll() for n, p in stack.workers.items() if p.poll() is not None}}  # fmt: skip
        finally:
            stack.stop()
            receiver.close()
        counted = scan_counter(pg.url)
        errors = sum(n for s, n in load.statuses().items() if not s.startswith("2"))
        out = {
            "benchmark": "soak",
            "machine": machine(),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "rate": rate, "minutes": args.minutes, "workers": args.workers,
            "load": result.summary(),
            "statuses": load.statuses(),
            "errors": errors,
            "latency_windows": load.windows(args.window),
            "rss": rss_report(samples, warmup=min(300.0, seconds / 5)),
            "store": store,
            "scan_counter": {"counted": counted, "acknowledged_scans": store["acknowledged"]["scan"],
                             "lookups": banks.looked_up,
                             "consistent": counted == store["acknowledged"]["scan"] + banks.looked_up},  # fmt: skip
            "bank_changes": bank_check,
            "processes_died": restarts,
        }  # fmt: skip
        out["ok"] = bool(errors == 0 and store["ok"] and bank_check["present_not_matching"] == 0
                         and bank_check["removed_still_matching"] == 0 and not restarts["server"]
                         and not restarts["workers"])  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    slim = {k: v for k, v in out.items() if k not in ("rss", "latency_windows", "machine")}
    slim["rss_slopes"] = {n: r["slope_mb_per_hour"] for n, r in out["rss"].items()}
    print(json.dumps(slim, indent=2))


if __name__ == "__main__":
    main()
