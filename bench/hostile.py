"""Hostile-load benchmark: a well-behaved client's latency while 50 hostile clients try to exhaust the server.

A real ``safehold serve`` (embedded SQLite, temp home) is driven over loopback only:

- phase 1, unloaded (``--unloaded-seconds``): one well-behaved client at a steady open-loop rate (``--rate``)
  alternates image scans (multipart JPEG, one that matches a bank image, one that does not) and case reads
  (``GET /v1/cases``, ``GET /v1/cases/{id}``) with an admin key;
- phase 2, loaded (``--seconds``, default 300): the same client continues while ``--clients`` hostile clients
  (asyncio, in a separate process so their CPU does not stall the measuring one) loop over a mix of oversized
  bodies (``Content-Length`` lies and real chunked streams, with and without a key), a 49-megapixel PNG of
  143 KB, a JPEG with 60,000 scans, a JPEG with 1,000 APP1 segments, URL scans of a local server that drips one
  byte every 2 s, log-in floods against ``/login`` (browser-like: the form's CSRF token and cookie fetched first,
  or not), 100,000-deep JSON, ``NaN`` / ``1e999999``, and integers beyond 64 bits in paths and queries.

Throughout, a prober asks ``/v1/health`` every 200 ms (2 s timeout) and the server's resident memory (its
process and any children) is sampled every second.

Writes ``bench/results/hostile.json`` and prints a summary. Exits 1 if any 5xx other than a deliberate 503
``media.busy`` / ``url.busy`` with ``Retry-After`` was seen, or a health probe was missed.

Usage::

    python bench/hostile.py                       # 60 s unloaded + 300 s loaded
    python bench/hostile.py --seconds 60 --unloaded-seconds 30
    python bench/hostile.py --kinds png_bomb,slow_url   # a subset of the mix, to attribute an effect
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import datetime as _dt
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PASSWORD = "bench-password-123"
HUGE = "99999999999999999999"  # > 2^64
SHED_CODES = {"media.busy", "url.busy"}  # deliberate load-shedding (503 + Retry-After)

KINDS = (
    "oversize_cl_anon",  # Content-Length: 1 GiB, no key: must be refused from the header
    "oversize_cl_platform",  # Content-Length: 600 MiB JSON / 300 MiB multipart, platform key
    "oversize_stream_anon",  # chunked, no Content-Length, no key, up to 64 MiB offered
    "oversize_stream_platform",  # chunked JSON with a platform key, up to 64 MiB offered
    "png_bomb",  # 7000 × 7000 PNG, 143 KB
    "jpeg_scans",  # progressive JPEG, last scan repeated 60,000 times
    "jpeg_app1",  # JPEG with 1,000 APP1 segments of 65 KB
    "slow_url",  # URL scan of a server that drips a byte every 2 s
    "login_flood",  # POST /login with wrong passwords, real and unknown users, with and without CSRF
    "deep_json",  # 100,000-deep arrays to JSON routes
    "nan_json",  # NaN, Infinity, 1e999999 in JSON bodies
    "huge_int",  # integers beyond 64 bits in paths and queries, API and console
)


# ------------------------------------------------------------------------------------------------ helpers


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def latency_summary(lat: list[float]) -> dict:
    return {
        "n": len(lat),
        "p50_ms": ms(pct(lat, 50)),
        "p90_ms": ms(pct(lat, 90)),
        "p99_ms": ms(pct(lat, 99)),
        "max_ms": ms(max(lat) if lat else None),
    }


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (VmRSS from /proc)."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime + stime, and cutime + cstime: children that have exited (an isolated image decode) count too
            total += sum(int(x) for x in fields[11:15]) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


# ------------------------------------------------------------------------------------------------ media


def png_bomb(width: int = 7000, height: int = 7000) -> bytes:
    from tests.signals.test_decode_limits import png_bomb as make

    return make(width, height)


def many_scans(repeat: int = 60_000) -> bytes:
    from tests.signals.test_decode_limits import many_scans as make

    return make(repeat)


def many_app1(count: int = 1000) -> bytes:
    from tests.signals.test_decode_limits import many_app1 as make

    return make(count)


# ------------------------------------------------------------------------------------------------ slow URL


class SlowServer:
    """A threaded HTTP server on 127.0.0.1 that answers 200 with a 1 MB Content-Length and then drips one byte
    every ``interval`` seconds, for at most ``limit`` seconds per connection (bounded: it stops by itself)."""

    def __init__(self, interval: float = 2.0, limit: float = 60.0):
        self.stop = threading.Event()
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                end = time.monotonic() + limit
                try:
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    while time.monotonic() < end and not outer.stop.wait(interval):
                        self.wfile.write(b"\xd8")
                        self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/slow.jpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------ hostile worker


class Tally:
    def __init__(self):
        self.status: dict[str, Counter] = defaultdict(Counter)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.five_xx: list[dict] = []
        self.shed = Counter()

    def note(self, kind: str, outcome: str, seconds: float, code: str | None = None, retry_after: bool = False):
        self.status[kind][outcome] += 1
        self.latency[kind].append(seconds)
        if outcome.startswith("5"):
            if outcome == "503" and code in SHED_CODES and retry_after:
                self.shed[f"{kind}:{code}"] += 1
            elif len(self.five_xx) < 50:
                self.five_xx.append({"kind": kind, "status": outcome, "code": code, "retry_after": retry_after})


def error_code(body: bytes) -> str | None:
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


async def raw_request(host: str, port: int, head: str, body_chunks, timeout: float) -> tuple[str, str | None, bool]:
    """Send a request over a raw socket (so Content-Length can lie), writing the body while reading the answer;
    the answer's status, error code and whether Retry-After was given, or ``closed`` when the server shut the
    connection without an answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)

    async def send():
        try:
            writer.write(head.encode())
            await writer.drain()
            async for chunk in body_chunks():
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(send())
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = raw.decode("latin-1").split("\r\n")
        status = lines[0].split()[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        body = b""
        if "content-length" in headers and int(headers["content-length"]) < 1 << 20:
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
        return status, error_code(body), "retry-after" in headers
    except asyncio.IncompleteReadError:
        return "closed", None, False
    finally:
        sender.cancel()
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1)
        except (TimeoutError, OSError, ConnectionError):
            pass


def chunks_of(total: int, size: int = 65536, chunked: bool = False, pause: float = 0.0):
    block = b"x" * size

    async def gen():
        sent = 0
        while sent < total:
            if chunked:
                yield f"{size:x}\r\n".encode() + block + b"\r\n"
            else:
                yield block
            sent += size
            if pause:
                await asyncio.sleep(pause)
        if chunked:
            yield b"0\r\n\r\n"

    return gen


async def hostile_main(cfg: dict) -> dict:
    base = cfg["base"]
    host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
    platform_keys = cfg["platform_keys"]
    reviewer_key = cfg["reviewer_key"]
    users = cfg["users"]
    kinds = cfg["kinds"]
    deadline = time.monotonic() + cfg["seconds"]
    timeout = cfg["timeout"]
    url_timeout = cfg["url_timeout"]
    media = {
        "png_bomb": png_bomb(),
        "jpeg_scans": many_scans(),
        "jpeg_app1": many_app1(),
    }
    deep = b"[" * 100_000 + b"]" * 100_000
    tally = Tally()
    limits = httpx.Limits(max_connections=cfg["clients"] * 2, max_keepalive_connections=cfg["clients"])
    http = httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout, follow_redirects=False)

    def bearer(i: int) -> dict:
        return {"Authorization": f"Bearer {platform_keys[i % len(platform_keys)]}"}

    async def via_httpx(kind: str, coro, t0: float):
        try:
            r = await coro
            code = error_code(r.content) if r.status_code >= 400 else None
            tally.note(kind, str(r.status_code), time.perf_counter() - t0, code, "retry-after" in r.headers)
        except httpx.TimeoutException:
            tally.note(kind, "timeout", time.perf_counter() - t0)
        except httpx.HTTPError as exc:
            tally.note(kind, f"error:{type(exc).__name__}", time.perf_counter() - t0)

    async def one(kind: str, cid: int, n: int):
        t0 = time.perf_counter()
        key = bearer(cid)
        if kind.startswith("oversize_"):
            auth = "" if kind.endswith("_anon") else f"Authorization: {key['Authorization']}\r\n"
            if kind.startswith("oversize_cl"):
                if n % 2 or kind.endswith("_anon"):
                    path, ctype, length = (
                        "/v1/scan",
                        "application/json",
                        (1 << 30 if kind.endswith("anon") else 600 << 20),
                    )
                else:
                    path, ctype, length = "/v1/scan", "multipart/form-data; boundary=xyz", 300 << 20
                head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Type: {ctype}\r\n"
                        f"Content-Length: {length}\r\n\r\n")  # fmt: skip
                body = chunks_of(0)  # the headers alone: the answer must come without the body
            else:
                path = "/v1/events" if kind.endswith("_anon") else "/v1/scan"
                head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Type: application/json\r\n"
                        f"Idempotency-Key: h-{cid}-{n}\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
                body = chunks_of(64 << 20, chunked=True)
            try:
                status, code, retry = await raw_request(host, port, head, body, timeout)
                tally.note(kind, status, time.perf_counter() - t0, code, retry)
            except TimeoutError:
                tally.note(kind, "timeout", time.perf_counter() - t0)
            except (ConnectionResetError, BrokenPipeError):
                # the server refused and closed while the body was still being sent: the kernel resets the
                # connection and the 413 it wrote is usually lost (documented: "the connection is closed")
                tally.note(kind, "reset", time.perf_counter() - t0)
            except OSError as exc:
                tally.note(kind, f"error:{type(exc).__name__}", time.perf_counter() - t0)
        elif kind in media:
            files = {"file": (f"{kind}.{'png' if kind == 'png_bomb' else 'jpg'}", media[kind])}
            await via_httpx(kind, http.post("/v1/scan", headers=key, files=files), t0)
        elif kind == "slow_url":
            req = http.post("/v1/scan", headers=key, json={"url": f"{cfg['slow_url']}?c={cid}&n={n}"},
                            timeout=url_timeout)  # fmt: skip
            await via_httpx(kind, req, t0)
        elif kind == "login_flood":
            user = (users[n % len(users)], f"nobody{cid}x{n}")[n % 2]
            with_csrf = (n // 2) % 2 == 0
            form = {"username": user, "password": f"wrong-{n}", "next": ""}
            cookies = None
            if with_csrf:
                try:
                    page = await http.get("/login")
                    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
                    if m:
                        form["csrf"] = m.group(1)
                    cookies = page.cookies
                except httpx.HTTPError:
                    pass
            req = http.post("/login", data=form, cookies=cookies, headers={"Origin": base})
            await via_httpx(kind, req, t0)
        elif kind == "deep_json":
            path = ("/v1/scan", "/v1/events", "/v1/scan/batch")[n % 3]
            req = http.post(path, headers={**key, "Content-Type": "application/json", "Idempotency-Key": f"d{cid}-{n}"},
                            content=deep)  # fmt: skip
            await via_httpx(kind, req, t0)
        elif kind == "nan_json":
            bodies = (
                b'{"url": NaN}',
                b'{"signal_type": "pdq", "value": 1e999999}',
                b'{"items": [{"signal_type": "md5", "value": -Infinity}]}',
                b'{"type": "content", "content": {"id": "x", "media_type": "text", "text": "t", "metadata": {"n": '
                + b"9" * 400
                + b"}}}",
            )
            path = ("/v1/scan", "/v1/scan", "/v1/scan/batch", "/v1/events")[n % 4]
            req = http.post(path, headers={**key, "Content-Type": "application/json", "Idempotency-Key": f"n{cid}-{n}"},
                            content=bodies[n % 4])  # fmt: skip
            await via_httpx(kind, req, t0)
        elif kind == "huge_int":
            rk = {"Authorization": f"Bearer {reviewer_key}"}
            which = n % 4
            if which == 0:
                req = http.get(f"/v1/cases/{HUGE}", headers=rk)
            elif which == 1:
                req = http.get("/v1/cases", params={"offset": HUGE, "limit": HUGE}, headers=rk)
            elif which == 2:
                req = http.get(f"/console/cases/{HUGE}")
            else:
                req = http.post(f"/v1/cases/{HUGE}/claim", headers=rk, json={})
            await via_httpx(kind, req, t0)

    async def client(cid: int):
        rng = random.Random(cid)
        n = 0
        while time.monotonic() < deadline:
            kind = kinds[(cid + n) % len(kinds)]
            await one(kind, cid, n)
            n += 1
            await asyncio.sleep(rng.uniform(0, 0.05))

    await asyncio.gather(*(client(i) for i in range(cfg["clients"])))
    await http.aclose()
    out = {}
    for kind in kinds:
        counts = tally.status.get(kind, Counter())
        five = {k: v for k, v in counts.items() if k.startswith("5")}
        out[kind] = {
            "sent": sum(counts.values()),
            "by_status": dict(sorted(counts.items())),
            "5xx": sum(five.values()),
            "latency": latency_summary(tally.latency.get(kind, [])),
        }
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "kinds": out,
        "shed": dict(tally.shed),
        "unexpected_5xx_samples": tally.five_xx,
        # the hostile clients share the machine's two cores with the server: what they used is reported beside it
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
    }


# ------------------------------------------------------------------------------------------------ the run


class WellBehaved:
    """One client, open loop: a request every 1/rate seconds whether or not the last one answered."""

    def __init__(self, base: str, admin: dict, matches: list[bytes], misses: list[bytes], case_ids: list[int]):
        self.base, self.admin = base, admin
        self.matches, self.misses, self.case_ids = matches, misses, case_ids
        self.local = threading.local()
        self.n = 0

    def client(self) -> httpx.Client:
        if not hasattr(self.local, "c"):
            self.local.c = httpx.Client(base_url=self.base, timeout=30)
        return self.local.c

    def request(self, n: int) -> tuple[str, str, float]:
        op = ("scan_match", "cases_list", "scan_miss", "case_get")[n % 4]
        c = self.client()
        t0 = time.perf_counter()
        try:
            if op == "scan_match":
                r = c.post(
                    "/v1/scan", headers=self.admin, files={"file": ("m.jpg", self.matches[n % len(self.matches)])}
                )
            elif op == "scan_miss":
                r = c.post("/v1/scan", headers=self.admin, files={"file": ("u.jpg", self.misses[n % len(self.misses)])})
            elif op == "cases_list":
                r = c.get("/v1/cases", params={"limit": 50}, headers=self.admin)
            else:
                r = c.get(f"/v1/cases/{self.case_ids[n % len(self.case_ids)]}", headers=self.admin)
            outcome = str(r.status_code)
            if op == "scan_match" and r.status_code == 200 and r.json().get("verdict") != "match":
                outcome = "200-no-match"
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.HTTPError as exc:
            outcome = f"error:{type(exc).__name__}"
        return op, outcome, time.perf_counter() - t0

    def run(self, seconds: float, rate: float) -> dict:
        results: list[tuple[str, str, float]] = []
        start = time.monotonic()
        with cf.ThreadPoolExecutor(16) as pool:
            futures = []
            i = 0
            while True:
                due = start + i / rate
                if due >= start + seconds:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                futures.append(pool.submit(self.request, self.n))
                self.n += 1
                i += 1
            for f in futures:
                results.append(f.result())
        ok = [lat for _op, out, lat in results if out == "200"]
        by_op = defaultdict(list)
        for op, out, lat in results:
            if out == "200":
                by_op[op].append(lat)
        outcomes = Counter(out for _op, out, _lat in results)
        return {
            "seconds": seconds,
            "rate_per_s": rate,
            **latency_summary(ok),
            "errors": sum(v for k, v in outcomes.items() if k != "200"),
            "by_status": dict(sorted(outcomes.items())),
            "by_op": {op: latency_summary(v) for op, v in sorted(by_op.items())},
        }


class Prober(threading.Thread):
    """``/v1/health`` every 200 ms with a 2 s timeout; a miss is a timeout, an error or a non-200."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.stop = base, threading.Event()
        self.sent = self.missed = 0
        self.lat: list[float] = []
        self.misses: list[dict] = []
        self.phase = "setup"

    def run(self):
        with httpx.Client(base_url=self.base, timeout=2) as c:
            while not self.stop.wait(0.2):
                t0 = time.perf_counter()
                self.sent += 1
                try:
                    r = c.get("/v1/health")
                    if r.status_code != 200:
                        raise RuntimeError(f"status {r.status_code}")
                    self.lat.append(time.perf_counter() - t0)
                except Exception as exc:  # noqa: BLE001 — every failure is a miss
                    self.missed += 1
                    if len(self.misses) < 100:
                        self.misses.append({"phase": self.phase, "at": round(time.time(), 1), "why": repr(exc)[:120]})

    def summary(self) -> dict:
        return {"sent": self.sent, "missed": self.missed, **latency_summary(self.lat), "misses": self.misses}


class Sampler(threading.Thread):
    """The server's RSS (process and children) and CPU every second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.samples: list[tuple[float, str, int]] = []
        self.phase = "setup"
        self.t0 = time.monotonic()

    def run(self):
        while not self.stop.wait(1.0):
            self.samples.append((round(time.monotonic() - self.t0, 1), self.phase, rss_bytes(self.pid)))

    def peak(self, phase: str) -> int:
        return max((r for _t, p, r in self.samples if p == phase), default=0)


def setup(server, args) -> dict:
    from tests.media import jpeg, variant

    admin = server.key("admin")
    platform_keys = [server.token("platform") for _ in range(args.platform_keys)]
    reviewer_key = server.token("reviewer")
    server.cli("user", "create", "admin1", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    server.cli("user", "create", "rev1", "--role", "reviewer", "--password-stdin", stdin=PASSWORD + "\n")
    http = httpx.Client(base_url=server.base, timeout=60)

    def ok(r):
        if r.status_code >= 400:
            raise SystemExit(f"setup: {r.request.method} {r.request.url} -> {r.status_code} {r.text[:300]}")
        return r

    ok(http.post("/v1/banks", json={"name": "known"}, headers=admin))
    originals = [jpeg(1000 + i) for i in range(args.bank_images)]
    for i, data in enumerate(originals):
        ok(http.post("/v1/banks/known/files", headers=admin, files={"file": (f"k{i}.jpg", data)}))
    pk = {"Authorization": f"Bearer {platform_keys[0]}"}
    for i in range(args.open_cases):
        event = {"type": "content", "content": {"id": f"img-{i}", "media_type": "image"},
                 "account": {"id": f"acct-{i}"}}  # fmt: skip
        ok(http.post("/v1/events", headers={**pk, "Idempotency-Key": f"img-{i}"}, data={"event": json.dumps(event)},
                     files={"file": (f"u{i}.jpg", variant(originals[i % len(originals)], scale=0.7))}))  # fmt: skip
    cases = ok(http.get("/v1/cases", params={"limit": 100}, headers=admin)).json()["cases"]
    if not cases:
        raise SystemExit("setup: no case opened")
    matches = [variant(o, scale=0.8, quality=80) for o in originals]
    misses = [jpeg(70_000 + i) for i in range(len(originals))]
    return {
        "admin": admin,
        "platform_keys": platform_keys,
        "reviewer_key": reviewer_key,
        "case_ids": [c["id"] for c in cases],
        "matches": matches,
        "misses": misses,
    }


def run(args) -> tuple[dict, bool]:
    from server import Server

    home = Path(tempfile.mkdtemp(prefix="safehold-hostile-"))
    slow = SlowServer(interval=args.drip_seconds)
    env = {"SAFEHOLD_URL_FETCH_ALLOW": json.dumps(["127.0.0.1/32"])}
    server = Server(home / "var", env=env)
    prober, sampler = Prober(server.base), Sampler(server.proc.pid)
    prober.start()
    sampler.start()
    report: dict = {}
    try:
        s = setup(server, args)
        client = WellBehaved(server.base, s["admin"], s["matches"], s["misses"], s["case_ids"])
        client.run(5, args.rate)  # warm-up, not counted
        report["rss_after_setup_mib"] = round(rss_bytes(server.proc.pid) / 2**20, 1)

        prober.phase = sampler.phase = "unloaded"
        cpu0 = cpu_seconds(server.proc.pid)
        print(f"phase 1: unloaded, {args.unloaded_seconds} s at {args.rate} req/s", flush=True)
        unloaded = client.run(args.unloaded_seconds, args.rate)
        unloaded["server_cpu_s"] = round(cpu_seconds(server.proc.pid) - cpu0, 1)
        unloaded_health = {"sent": prober.sent, "missed": prober.missed}

        prober.phase = sampler.phase = "loaded"
        cpu0 = cpu_seconds(server.proc.pid)
        print(f"phase 2: loaded, {args.seconds} s, {args.clients} hostile clients: {', '.join(args.kinds)}", flush=True)
        cfg = {
            "base": server.base,
            "platform_keys": s["platform_keys"],
            "reviewer_key": s["reviewer_key"],
            "users": ["rev1", "admin1"],
            "kinds": args.kinds,
            "seconds": args.seconds,
            "clients": args.clients,
            "timeout": args.timeout,
            "url_timeout": args.url_timeout,
            "slow_url": slow.url,
        }
        # The hostile clients run in their own process: their CPU must not stall the measuring client's GIL.
        hostile = subprocess.Popen([sys.executable, __file__, "--hostile-worker", json.dumps(cfg)],
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        loaded = client.run(args.seconds, args.rate)
        loaded["server_cpu_s"] = round(cpu_seconds(server.proc.pid) - cpu0, 1)
        try:
            out, _ = hostile.communicate(timeout=args.url_timeout + args.timeout + 60)
        except subprocess.TimeoutExpired:
            hostile.kill()
            out, _ = hostile.communicate()
        hostile_result = json.loads(out) if hostile.returncode == 0 and out else {"error": "hostile worker failed"}
        prober.phase = sampler.phase = "after"
        time.sleep(3)
        report["server_alive_after"] = (
            server.proc.poll() is None and httpx.get(f"{server.base}/v1/health").status_code == 200
        )
        users = json.loads(server.cli("user", "list", "--json"))
        report["accounts_after"] = {u["username"]: {k: u.get(k) for k in ("locked_until", "failed_logins") if k in u}
                                    for u in users}  # fmt: skip
    finally:
        prober.stop.set()
        sampler.stop.set()
        prober.join(5)
        sampler.join(5)
        server.stop()
        slow.close()

    p99u, p99l = unloaded["p99_ms"], loaded["p99_ms"]
    ratio = round(p99l / p99u, 2) if p99u and p99l else None
    peak = {ph: round(sampler.peak(ph) / 2**20, 1) for ph in ("setup", "unloaded", "loaded", "after")}
    kinds = hostile_result.get("kinds", {})
    unexpected = sum(k["5xx"] for k in kinds.values()) - sum(hostile_result.get("shed", {}).values())
    wb_5xx = sum(v for k, v in loaded["by_status"].items() if k.startswith("5")) + sum(
        v for k, v in unloaded["by_status"].items() if k.startswith("5")
    )
    health = prober.summary()
    report.update(
        {
            "well_behaved": {"unloaded": unloaded, "loaded": loaded, "p99_ratio_loaded_over_unloaded": ratio},
            "health": {**health, "unloaded": unloaded_health, "stopped_answering": health["missed"] > 0},
            "rss_peak_mib": peak,
            "rss_timeline_mib": [(t, p, round(r / 2**20)) for t, p, r in sampler.samples[:: max(1, args.rss_every)]],
            "slow_url_server_connections": slow.connections,
            "hostile": hostile_result,
            "targets": {
                "p99_ratio_max": 3.0,
                "p99_ratio_ok": ratio is not None and ratio <= 3.0,
                "rss_ceiling_mib": args.rss_ceiling_mib,
                "rss_ok": peak["loaded"] <= args.rss_ceiling_mib,
                "unexpected_5xx": unexpected + wb_5xx,
                "shed_503": sum(hostile_result.get("shed", {}).values()),
                "health_missed": health["missed"],
            },
        }
    )
    failed = bool(unexpected or wb_5xx or health["missed"] or "error" in hostile_result)
    return report, failed


def print_summary(report: dict) -> None:
    wb, t = report["well_behaved"], report["targets"]
    u, lo = wb["unloaded"], wb["loaded"]
    print()
    print(f"well-behaved client  unloaded: n={u['n']} p50 {u['p50_ms']} ms  p99 {u['p99_ms']} ms  errors {u['errors']}")
    print(f"                     loaded:   n={lo['n']} p50 {lo['p50_ms']} ms  p99 {lo['p99_ms']} ms  "
          f"max {lo['max_ms']} ms  errors {lo['errors']} {lo['by_status']}")  # fmt: skip
    print(f"p99 loaded / unloaded: {wb['p99_ratio_loaded_over_unloaded']} (target <= 3)")
    print(
        f"CPU seconds while loaded: server {lo.get('server_cpu_s')}, hostile clients "
        f"{report['hostile'].get('client_cpu_s')}; load average {report['machine'].get('load')} at the start"
    )
    print(f"server RSS peak: {report['rss_peak_mib']} MiB (ceiling {t['rss_ceiling_mib']} MiB)")
    h = report["health"]
    print(f"/v1/health: {h['sent']} probes, {h['missed']} missed, p99 {h['p99_ms']} ms, max {h['max_ms']} ms")
    print("hostile kinds:")
    for kind, k in report["hostile"].get("kinds", {}).items():
        print(f"  {kind:26s} {k['sent']:6d} sent  {k['by_status']}  p99 {k['latency']['p99_ms']} ms")
    print(f"503 load-shedding (media.busy / url.busy with Retry-After): {report['hostile'].get('shed', {})}")
    print(f"unexpected 5xx: {t['unexpected_5xx']}  accounts after: {report.get('accounts_after')}")


def main() -> None:
    if "--hostile-worker" in sys.argv:
        cfg = json.loads(sys.argv[sys.argv.index("--hostile-worker") + 1])
        print(json.dumps(asyncio.run(hostile_main(cfg))))
        return
    from machine_info import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="loaded phase")
    parser.add_argument("--unloaded-seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=5, help="well-behaved requests per second (open loop)")
    parser.add_argument("--clients", type=int, default=50, help="hostile clients")
    parser.add_argument("--kinds", default=",".join(KINDS), help="hostile request kinds, comma-separated")
    parser.add_argument("--timeout", type=float, default=10, help="hostile client timeout, seconds")
    parser.add_argument("--url-timeout", type=float, default=25, help="hostile URL-scan timeout (fetch deadline 15 s)")
    parser.add_argument("--platform-keys", type=int, default=6, help="platform keys the hostile clients share")
    parser.add_argument("--drip-seconds", type=float, default=2.0, help="slow URL server: seconds between bytes")
    parser.add_argument("--bank-images", type=int, default=10)
    parser.add_argument("--open-cases", type=int, default=10)
    parser.add_argument("--rss-ceiling-mib", type=float, default=1536)
    parser.add_argument("--rss-every", type=int, default=5, help="keep every n-th RSS sample in the JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hostile.json")
    args = parser.parse_args()
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    started = _dt.datetime.now(_dt.UTC)
    mach = machine()
    report, failed = run(args)
    out = {
        "benchmark": "hostile load: a well-behaved client while hostile clients try to exhaust the server",
        "started": started.isoformat(timespec="seconds"),
        "machine": {**mach, "load_end": os.getloadavg()[0]},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "server_settings": 'defaults, plus SAFEHOLD_URL_FETCH_ALLOW=["127.0.0.1/32"] for the slow URL server',
        **report,
        "failed": failed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print_summary(out)
    print(f"\nwritten {args.out}; {'FAILED' if failed else 'ok'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
