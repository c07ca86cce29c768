"""Open-loop HTTP load for the throughput benchmarks: requests leave at a fixed rate whether or not earlier ones
have answered, and each latency is measured from the request's *scheduled* time, so a server that stalls shows as
late answers instead of as a politely slower client (the "coordinated omission" of closed-loop tools such as wrk).

The client is a minimal HTTP/1.1 keep-alive client on asyncio streams (uvloop when installed): httpx's async client
costs about a millisecond of CPU per request, which at 1,000 requests/s on a 2-vCPU machine would measure the load
generator, not the server. It speaks just enough HTTP for Safehold's and HMA's JSON answers (Content-Length or
chunked bodies, ``Connection: close``).

Use :func:`run` for one rate, :func:`sweep` for the highest rate that keeps p99 under a bound, :func:`cpu_seconds`
for the CPU a server's process tree spent meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

#: Idle connections older than this are not reused (below uvicorn's default keep-alive timeout of 5 s).
KEEP_ALIVE = 4.0


@dataclass(frozen=True)
class Request:
    """One request: ``body`` is sent as JSON unless ``content_type`` says otherwise; ``token`` overrides the run's."""

    path: str
    body: bytes = b""
    method: str = "POST"
    content_type: str = "application/json"
    token: str | None = None


@dataclass
class Result:
    """What one open-loop run saw. ``latencies`` (seconds, from the scheduled time) cover answered requests of any
    status; ``statuses`` counts answers by status and failures by kind (``timeout``, ``connection``)."""

    rate: float
    seconds: float
    latencies: list[float] = field(default_factory=list)
    #: Each answered request's scheduled time, seconds from the run's start (parallel to ``latencies``).
    offsets: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    wall: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not str(status).startswith("2"))

    def pct(self, q: float) -> float | None:
        """The ``q``-th percentile of latency in milliseconds (nearest rank)."""
        return round(_nearest_rank(self.latencies, q) * 1000, 2) if self.latencies else None

    def summary(self) -> dict:
        return {
            "rate": self.rate, "seconds": self.seconds, "sent": self.sent, "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
            "achieved_per_s": round(len(self.latencies) / self.wall, 1) if self.wall else 0.0,
            "p50_ms": self.pct(50), "p90_ms": self.pct(90), "p99_ms": self.pct(99), "p999_ms": self.pct(99.9),
            "max_ms": round(max(self.latencies) * 1000, 2) if self.latencies else None,
            "p99_ms_per_second": self.p99_per_second(),
        }  # fmt: skip

    def p99_per_second(self) -> list[float]:
        """p99 latency (ms) of the requests scheduled in each second of the run: where in time the tail is (a
        cold start, a collector pause, a checkpoint) rather than only how long it is."""
        windows: dict[int, list[float]] = {}
        for offset, latency in zip(self.offsets, self.latencies, strict=True):
            windows.setdefault(int(offset), []).append(latency)
        return [round(_nearest_rank(w, 99) * 1000, 1) for _, w in sorted(windows.items())]


def _nearest_rank(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (not empty), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class _Client:
    """A pool of keep-alive connections to one server, at most ``limit`` open at once (a request that finds them
    all busy waits, and its wait counts in its latency)."""

    def __init__(self, base: str, token: str, limit: int):
        host_port = base.removeprefix("http://").rstrip("/")
        self.host, _, port = host_port.partition(":")
        self.port = int(port or 80)
        self.token = token
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(limit)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.perf_counter() - used < KEEP_ALIVE:
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False

    async def send(self, request: Request) -> tuple[int, bytes]:
        token = request.token or self.token
        head = (f"{request.method} {request.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                + (f"Authorization: Bearer {token}\r\n" if token else "")
                + (f"Content-Type: {request.content_type}\r\nContent-Length: {len(request.body)}\r\n"
                   if request.method != "GET" else "") + "\r\n").encode() + request.body  # fmt: skip
        async with self.slots:
            for attempt in range(2):
                reader, writer, reused = await self._connection()
                try:
                    writer.write(head)
                    status, close, body = await _answer(reader)
                except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                    writer.close()
                    if reused and attempt == 0:  # the server closed an idle connection: retry on a new one
                        continue
                    raise
                if close:
                    writer.close()
                else:
                    self.idle.append((reader, writer, time.perf_counter()))
                return status, body
        raise ConnectionError("unreachable")

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Status, whether the server closes the connection, and the body of one HTTP/1.1 answer."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before the answer")
    status = int(line.split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if not chunked:
        return status, close, await reader.readexactly(length)
    parts = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readline()
    await reader.readline()
    return status, close, b"".join(parts)


async def run(
    base: str,
    token: str,
    make: Callable[[int], Request],
    rate: float,
    seconds: float,
    *,
    connections: int = 512,
    timeout: float = 10.0,
    on_answer: Callable[[int, int, bytes], None] | None = None,
) -> Result:
    """Send ``make(i)`` for i = 0, 1, … at ``rate`` per second for ``seconds`` to ``base`` with ``token``.

    ``on_answer(i, status, body)`` sees every answer (a benchmark that checks nothing was lost keeps the ids).
    A request unanswered after ``timeout`` seconds counts as ``timeout``; one whose connection failed, as
    ``connection``; neither stops the run.
    """
    client = _Client(base, token, connections)
    result = Result(rate=rate, seconds=seconds)

    async def one(i: int, due: float) -> None:
        try:
            status, body = await asyncio.wait_for(client.send(make(i)), timeout)
        except TimeoutError:
            result.statuses["timeout"] += 1
            return
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            result.statuses["connection"] += 1
            return
        result.latencies.append(time.perf_counter() - due)
        result.offsets.append(due - start)
        result.statuses[status] += 1
        if on_answer:
            on_answer(i, status, body)

    tasks = set()
    start = time.perf_counter() + 0.05
    for i in range(int(rate * seconds)):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    result.wall = time.perf_counter() - start
    client.close()
    return result


def run_sync(*args, **kwargs) -> Result:
    """:func:`run` on its own event loop (uvloop's when installed)."""
    try:
        import uvloop

        return uvloop.run(run(*args, **kwargs))
    except ImportError:
        return asyncio.run(run(*args, **kwargs))


def sweep(
    base: str,
    token: str,
    make: Callable[[int], Request],
    rates: list[float],
    seconds: float,
    *,
    p99_ms: float = 50.0,
    pid: int | None = None,
    **kwargs,
) -> tuple[list[dict], float | None]:
    """Run each rate in turn (lowest first) and return every run's summary and the highest rate whose run had no
    error and a p99 within ``p99_ms``; stop after the first rate that misses (higher ones would too). With
    ``pid``, each summary also gives the server's CPU milliseconds per answered request."""
    runs, best = [], None
    offset = 0
    for rate in sorted(rates):
        cpu = cpu_seconds(pid) if pid else 0.0
        shifted = dict(kwargs)
        if kwargs.get("on_answer"):  # the same numbering as ``make``'s, across the runs
            shifted["on_answer"] = lambda i, status, body, o=offset: kwargs["on_answer"](o + i, status, body)
        result = run_sync(base, token, lambda i, o=offset: make(o + i), rate, seconds, **shifted)
        offset += result.sent
        summary = result.summary()
        if pid and result.latencies:
            summary["server_cpu_ms_per_request"] = round((cpu_seconds(pid) - cpu) * 1000 / len(result.latencies), 3)
        runs.append(summary)
        ok = result.errors == 0 and summary["p99_ms"] is not None and summary["p99_ms"] <= p99_ms
        if not ok:
            break
        best = rate
    return runs, best


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (a pre-fork server's workers, Celery's pool), from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                continue
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for current in process_tree(pid):
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` and all its descendants, in MB (0 when it is gone)."""
    total = 0
    for current in process_tree(pid):
        try:
            with open(f"/proc/{current}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return round(total / 1024, 1)
