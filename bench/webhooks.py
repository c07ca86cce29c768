"""Webhook delivery: deliveries per second to a local receiver, and decision → delivery latency.

The receiver runs in its own process (``ThreadingHTTPServer``, HTTP/1.1 keep-alive) and verifies every
signature, as a platform's endpoint would. Per database (SQLite file, and the local PostgreSQL if it runs):

- **throughput**: N deliveries queued in one transaction, then drained by ``Dispatcher.run_once`` at several
  ``concurrency`` values; deliveries/s counts only rows marked delivered. The peer in the same run is the
  ceiling: the same signed POSTs sent straight from an ``httpx.Client`` with as many threads, with no outbox.
  On PostgreSQL the table is analysed once the backlog is queued (what autovacuum does on a live system).
- **latency**: one case at a time is decided (``csam``/``A1``: the seeded policy queues two platform-facing
  deliveries) and committed; latency is from that commit to the receiver's arrival of ``action.remove_content``.
  ``in_process``: the dispatcher runs in the deciding process and is woken by the commit (``safehold serve``).
  ``separate_worker``: the decision is committed by another service instance that cannot wake it, so the
  worker finds it by polling (``webhook_poll_interval``, default 1 s) — an API process plus a separate worker;
  each decision comes at a random point of the poll cycle.

Usage: ``.venv/bin/python bench/webhooks.py [--quick] [--out bench/results/webhooks.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from sqlalchemy import delete, func, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import cpu_model  # noqa: E402
from safehold.actions.dispatcher import Dispatcher, body_bytes  # noqa: E402
from safehold.actions.service import ActionService  # noqa: E402
from safehold.actions.signing import sign, verify  # noqa: E402
from safehold.actions.webhooks import WebhookService  # noqa: E402
from safehold.background import DELIVER_WEBHOOKS  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.services import Services  # noqa: E402
from safehold.store.models import Case, WebhookDelivery  # noqa: E402

PG_ADMIN = os.environ.get("SAFEHOLD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- the receiver (its own process) ------------------------------------------------------------------------


def serve_receiver(secret: str) -> None:
    """Print the port, then answer POSTs (204 if the signature verifies, else 401). ``GET /arrivals`` returns
    ``{"arrivals": {case_id: first remove_content arrival}, "count": n, "bad": n}``."""
    arrivals: dict[str, float] = {}
    counts = {"count": 0, "bad": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            at = time.time()
            ok = verify(secret, self.headers.get("Safehold-Signature", ""), body)
            with lock:
                counts["count" if ok else "bad"] += 1
                if ok and self.headers.get("Safehold-Event") == "action.remove_content":
                    arrivals.setdefault(str(json.loads(body)["case"]["id"]), at)
            self._answer(204 if ok else 401, b"")

        def do_GET(self):
            with lock:
                body = json.dumps({"arrivals": arrivals, **counts}).encode()
            self._answer(200, body)

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 refuses connections under concurrent senders
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


def _exit_with_parent() -> None:
    """A receiver left behind by a crashed benchmark would hold its terminal's pipes open: follow the parent."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


class ReceiverProcess:
    def __init__(self, secret: str):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.proc.stdin.write(secret + "\n")
        self.proc.stdin.close()
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.client = httpx.Client(timeout=5)

    def stats(self) -> dict:
        return self.client.get(self.url).json()

    def close(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait()


# --- databases ---------------------------------------------------------------------------------------------


def databases(tmp: Path, want_pg: bool):
    yield "sqlite", f"sqlite:///{tmp / 'bench.db'}", None
    if not want_pg:
        return
    try:
        import psycopg

        name = f"safehold_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no local PostgreSQL: SQLite only
        print(f"PostgreSQL skipped: {exc}", flush=True)
        return

    def drop():
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    yield "postgresql", PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}", drop


def new_case(svc: Services) -> int:
    n = uuid.uuid4().hex[:12]
    with svc.db.session() as s:
        case = Case(subject_key=f"content:b{n}", content_id=f"b{n}", account_id=f"acct{n}", source="hash_match")
        s.add(case)
        s.flush()
        return case.id


# --- measurements ------------------------------------------------------------------------------------------


def throughput(svc: Services, receiver: ReceiverProcess, n: int, concurrency: int) -> dict:
    with svc.db.session() as s:
        for i in range(n):
            payload = {"case": {"id": i}, "action": {"id": i, "kind": "remove_content", "params": {}}}
            svc.webhooks.enqueue(s, "action.notify", payload)
    if not svc.db.is_sqlite:  # statistics of a backlog, as autovacuum would gather them (not of an empty table)
        with svc.db.session() as s:
            s.execute(text("ANALYZE webhook_deliveries"))
    dispatcher = Dispatcher(svc.db, svc.webhooks, svc.settings)
    dispatcher.concurrency = concurrency
    before = receiver.stats()["count"]
    t = time.perf_counter()
    while dispatcher.run_once(limit=1000):
        pass
    elapsed = time.perf_counter() - t
    dispatcher.close()
    with svc.db.session() as s:
        delivered = s.scalar(select(func.count()).where(WebhookDelivery.status == "delivered"))
        s.execute(delete(WebhookDelivery))
    received = receiver.stats()["count"] - before
    return {
        "concurrency": concurrency,
        "n": n,
        "delivered": delivered,
        "received": received,
        "seconds": elapsed,
        "deliveries_per_s": delivered / elapsed,
    }


def raw_httpx(receiver: ReceiverProcess, secret: str, n: int, concurrency: int) -> dict:
    """The ceiling: the same signed POSTs with no database at all."""
    client = httpx.Client(timeout=10)
    bodies = [body_bytes({"id": uuid.uuid4().hex, "event": "action.notify", "case": {"id": i}}) for i in range(n)]

    def post(body: bytes) -> bool:
        headers = {"Content-Type": "application/json", "Safehold-Signature": sign(secret, body, int(time.time()))}
        return client.post(receiver.url, content=body, headers=headers).status_code == 204

    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(post, bodies))
    elapsed = time.perf_counter() - t
    client.close()
    return {"concurrency": concurrency, "n": n, "delivered": ok, "seconds": elapsed, "deliveries_per_s": ok / elapsed}


def latency(svc: Services, receiver: ReceiverProcess, samples: int, *, separate_worker: bool) -> dict:
    """Decide ``samples`` cases one at a time; decision commit → receiver arrival of remove_content."""
    actions = svc.actions
    if separate_worker:  # another process's services: its commits cannot wake this dispatcher
        hooks = WebhookService(svc.db, svc.audit, svc.sealer, svc.settings)
        actions = ActionService(svc.db, svc.audit, hooks)
    svc.tasks.start([DELIVER_WEBHOOKS])  # woken by svc.webhooks' commits, as in `safehold serve`
    committed: dict[str, float] = {}
    try:
        for _ in range(samples):
            if separate_worker:  # decide at a random point of the worker's poll cycle, not just after a round
                time.sleep(random.uniform(0, svc.settings.webhook_poll_interval))
            case_id = new_case(svc)
            with svc.db.session() as s:
                case = s.get(Case, case_id)
                case.decision, case.classification, case.status = "csam", "A1", "closed"
                actions.for_decision(s, case, "user:bench")
            committed[str(case_id)] = time.time()
            deadline = time.time() + 30
            while str(case_id) not in receiver.stats()["arrivals"]:
                if time.time() > deadline:
                    raise RuntimeError(f"case {case_id}: no delivery within 30 s")
                time.sleep(0.002)
    finally:
        svc.tasks.stop()
    arrivals = receiver.stats()["arrivals"]
    ms = sorted((arrivals[c] - t) * 1000 for c, t in committed.items())
    return {
        "samples": samples,
        "poll_interval_s": svc.settings.webhook_poll_interval,
        "p50_ms": statistics.median(ms),
        "p95_ms": ms[int(0.95 * (len(ms) - 1))],
        "p99_ms": ms[int(0.99 * (len(ms) - 1))],
        "max_ms": ms[-1],
        "mean_ms": statistics.fmean(ms),
    }


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    info["cpu"] = cpu_model()
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_start"] = f.read().split()[:3]
        info["httpx"] = httpx.__version__
    except Exception:
        pass
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Small run (a smoke test of the benchmark).")
    ap.add_argument("--n", type=int, default=3000, help="Deliveries per throughput run.")
    ap.add_argument("--samples", type=int, default=200, help="Decisions per latency run.")
    ap.add_argument("--concurrency", default="1,8,16")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only.")
    ap.add_argument("--out", default=str(REPO / "bench/results/webhooks.json"))
    ap.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receiver:
        return serve_receiver(sys.stdin.readline().strip())
    n, samples = (300, 30) if args.quick else (args.n, args.samples)
    levels = [int(c) for c in args.concurrency.split(",")]
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for backend, url, drop in databases(Path(tmp), not args.no_pg):
            settings = Settings(home=Path(tmp) / backend, database_url=url)
            svc = Services(settings, load_index=False)
            _, secret = svc.webhooks.create("bench", "http://127.0.0.1:9/placeholder")
            receiver = ReceiverProcess(secret)
            svc.webhooks.update("bench", url=receiver.url)
            try:
                run = {"database": backend, "throughput": [], "raw_httpx": []}
                for c in levels:
                    run["throughput"].append(throughput(svc, receiver, n, c))
                    run["raw_httpx"].append(raw_httpx(receiver, secret, n, c))
                    print(f"[{backend}] concurrency {c}: {run['throughput'][-1]['deliveries_per_s']:,.0f}/s "
                          f"(raw httpx {run['raw_httpx'][-1]['deliveries_per_s']:,.0f}/s)", flush=True)  # fmt: skip
                run["latency_in_process"] = latency(svc, receiver, samples, separate_worker=False)
                run["latency_separate_worker"] = latency(svc, receiver, max(10, samples // 4), separate_worker=True)
                run["bad_signatures"] = receiver.stats()["bad"]
                for key in ("latency_in_process", "latency_separate_worker"):
                    lat = run[key]
                    print(f"[{backend}] {key}: p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms", flush=True)
                report["runs"].append(run)
            finally:
                receiver.close()
                svc.close()
                if drop:
                    drop()
    with open("/proc/loadavg") as f:
        report["machine"]["loadavg_end"] = f.read().split()[:3]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
