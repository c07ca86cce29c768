"""End-to-end review pipeline benchmark: the real server as `make run` starts it (embedded SQLite, in-process
workers), driven over HTTP from another process.

What it measures, in one run on one machine:

- event intake: ``POST /v1/events`` with an image (hashed, matched against a bank, case opened when it matches)
  and signal-only events (a classifier score), events/s and latency percentiles, at 1 and 4 concurrent clients;
- the review queue with ``--cases`` open cases: ``GET /v1/cases`` (first page), ``/v1/cases/counts``, one case;
  the console's queue and case pages for a logged-in reviewer;
- decisions: claim + decide on known-match cases (each fires the starting policy's actions), and the latency from
  sending the decision to the signed webhook arriving at a local receiver;
- the server process's memory: resident set after the run and its peak (VmHWM).

The peer named by the issue, ROOST Coop, is a Node/React/ClickHouse/Scylla stack that its authors size at 16 GiB;
it needs Docker, which this machine has no engine for, so it cannot run here: its figure is the published one.

Usage::

    python bench/review.py --cases 10000 --out bench/results/review.json
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as _dt
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media import jpeg, variant  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from server import Server  # noqa: E402

PASSWORD = "bench-password-123"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def summary(latencies: list[float], seconds: float) -> dict:
    return {
        "n": len(latencies),
        "per_second": round(len(latencies) / seconds, 1) if seconds else None,
        "p50_ms": round(pct(latencies, 50) * 1000, 2),
        "p95_ms": round(pct(latencies, 95) * 1000, 2),
        "p99_ms": round(pct(latencies, 99) * 1000, 2),
    }


def proc_memory(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value, _unit = line.split()
                fields[name.rstrip(":")] = int(value) * 1024
    return {"rss_mib": round(fields["VmRSS"] / 2**20, 1), "peak_rss_mib": round(fields["VmHWM"] / 2**20, 1)}


class Receiver:
    """A local webhook receiver that notes when each delivery arrived."""

    def __init__(self):
        self.arrivals: dict[int, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                case = (body.get("case") or {}).get("id")
                if case is not None:
                    outer.arrivals.setdefault(case, time.perf_counter())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def timed(fn, items, workers: int) -> tuple[list[float], float]:
    def one(item):
        t = time.perf_counter()
        fn(item)
        return time.perf_counter() - t

    start = time.perf_counter()
    if workers == 1:
        lat = [one(i) for i in items]
    else:
        with cf.ThreadPoolExecutor(workers) as pool:
            lat = list(pool.map(one, items))
    return lat, time.perf_counter() - start


def ok(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        raise SystemExit(f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:300]}")
    return r


def console_login(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = ok(client.get("/login")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    form = {"username": username, "password": PASSWORD}
    if csrf:
        form["csrf"] = csrf.group(1)
    r = client.post("/login", data=form, headers={"Origin": base})
    if r.status_code >= 400:
        raise SystemExit(f"console log-in failed: {r.status_code}")
    return client


def run(args) -> dict:
    home = Path(tempfile.mkdtemp(prefix="safehold-bench-"))
    receiver = Receiver()
    server = Server(home / "var")
    results: dict = {}
    try:
        admin, platform_key, reviewer = server.key("admin"), server.key("platform"), server.key("reviewer")
        server.cli("user", "create", "rev1", "--role", "reviewer", "--password-stdin", stdin=PASSWORD + "\n")
        http = httpx.Client(base_url=server.base, timeout=60)
        ok(http.post("/v1/banks", json={"name": "known"}, headers=admin))
        ok(http.post("/v1/webhooks", json={"name": "bench", "url": receiver.url}, headers=admin))
        originals = [jpeg(1000 + i) for i in range(args.bank_images)]
        for i, data in enumerate(originals):
            ok(http.post("/v1/banks/known/files", headers=admin, files={"file": (f"k{i}.jpg", data)}))

        # --- intake: image events, one in three a copy of a bank image
        uploads = []
        for i in range(args.image_events):
            data = variant(originals[i % len(originals)], scale=0.7) if i % 3 == 0 else jpeg(50_000 + i)
            uploads.append((i, data))

        def image_event(item):
            i, data = item
            event = {"type": "content", "content": {"id": f"img-{i}", "media_type": "image"},
                     "account": {"id": f"acct-{i % 97}"}}  # fmt: skip
            ok(http.post("/v1/events", headers={**platform_key, "Idempotency-Key": f"img-{i}"},
                         data={"event": json.dumps(event)}, files={"file": (f"u{i}.jpg", data)}))  # fmt: skip

        half = len(uploads) // 2
        lat, secs = timed(image_event, uploads[:half], 1)
        results["events_image_1_client"] = summary(lat, secs)
        lat, secs = timed(image_event, uploads[half:], 4)
        results["events_image_4_clients"] = summary(lat, secs)

        # --- intake: signal-only events up to --cases open cases
        def signal_event(i):
            event = {"type": "content", "content": {"id": f"sig-{i}", "media_type": "text", "text": "synthetic"},
                     "account": {"id": f"acct-{i % 997}"},
                     "signals": [{"source": "classifier", "category": ("grooming", "B2", "other")[i % 3],
                                  "confidence": 0.5 + (i % 50) / 100}]}  # fmt: skip
            ok(http.post("/v1/events", headers={**platform_key, "Idempotency-Key": f"sig-{i}"}, json=event))

        so_far = ok(http.get("/v1/cases", params={"limit": 1}, headers=admin)).json()["total"]
        n_signal = max(args.cases - so_far, 1000)
        lat, secs = timed(signal_event, range(n_signal // 4), 1)
        results["events_signal_1_client"] = summary(lat, secs)
        lat, secs = timed(signal_event, range(n_signal // 4, n_signal), 4)
        results["events_signal_4_clients"] = summary(lat, secs)
        total = ok(http.get("/v1/cases", params={"limit": 1}, headers=admin)).json()["total"]
        results["open_cases"] = total

        # --- the queue, read by reviewers
        some_case = ok(http.get("/v1/cases", params={"limit": 1}, headers=admin)).json()["cases"][0]["id"]
        reads = {
            "api_queue_page": lambda _: ok(http.get("/v1/cases", params={"limit": 50}, headers=reviewer)),
            "api_counts": lambda _: ok(http.get("/v1/cases/counts", headers=reviewer)),
            "api_case": lambda _: ok(http.get(f"/v1/cases/{some_case}", headers=reviewer)),
        }
        console = console_login(server.base, "rev1")
        reads["console_queue_page"] = lambda _: ok(console.get("/console"))
        reads["console_case_page"] = lambda _: ok(console.get(f"/console/cases/{some_case}"))
        for name, fn in reads.items():
            lat, secs = timed(fn, range(args.reads), 1)
            results[name] = summary(lat, secs)

        # --- decisions on known-match cases, and the webhook they cause
        matched: list[dict] = []
        offset = 0
        while len(matched) < args.decisions and offset < total:
            page = ok(http.get("/v1/cases", params={"queue": "media", "limit": 200, "offset": offset}, headers=admin))
            matched += [c for c in page.json()["cases"] if c["known_match"]]
            offset += 200
        matched = matched[: args.decisions]
        decided_at: dict[int, float] = {}

        def decide(case):
            ok(http.post(f"/v1/cases/{case['id']}/claim", json={}, headers=reviewer))
            # From sending the decision: the webhook often arrives before the decision's own answer is read.
            decided_at[case["id"]] = time.perf_counter()
            ok(http.post(f"/v1/cases/{case['id']}/decision", json={"decision": "csam", "classification": "B2"},
                         headers=reviewer))  # fmt: skip

        lat, secs = timed(decide, matched, 1)
        results["decide_claim_plus_decision"] = summary(lat, secs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(c in receiver.arrivals for c in decided_at):
            time.sleep(0.05)
        delays = [receiver.arrivals[c] - t for c, t in decided_at.items() if c in receiver.arrivals]
        results["decision_to_webhook"] = {**summary(delays, 0), "delivered": len(delays), "decided": len(decided_at)}
        results["decision_to_webhook"].pop("per_second")
        results["server_memory"] = proc_memory(server.proc.pid)
        verify = ok(http.get("/v1/audit/verify", headers=admin)).json()
        results["audit_chain"] = {"ok": verify["ok"], "records": verify["checked"]}
    finally:
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="open cases in the queue when it is read")
    parser.add_argument("--bank-images", type=int, default=50)
    parser.add_argument("--image-events", type=int, default=300)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "review.json")
    args = parser.parse_args()
    started = _dt.datetime.now(_dt.UTC)
    load_start = os.getloadavg()[0]
    results = run(args)
    report = {
        "benchmark": "review pipeline end to end (real server, embedded SQLite)",
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "peer": {
            "name": "ROOST Coop",
            "memory_gib_published": 16,
            "run_here": False,
            "why": "needs Docker (Node, ClickHouse, Scylla); this machine has no Docker engine",
        },  # fmt: skip
        "results": results,
        "run_id": uuid.uuid4().hex[:8],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
