"""Fault runs: the soak's setup and load (bench/soak.py) for a few minutes, during which the private PostgreSQL is
restarted (``pg_ctl restart -m fast``), the private Redis is killed and started empty, a Celery worker is killed
(SIGKILL; another is started) and the API server is killed (SIGKILL) and started again on the same port.

The client behaves as a platform does: every request that failed or went unanswered is sent again, with the same
message id, idempotency key or scan, until it is acknowledged (the bank changes too). Then the store is read as the
soak does — every acknowledged item stored exactly once, every queued webhook delivered — and each fault is reported
with the failures the clients saw from it until the next one, and the time from the fault to the first
acknowledged request after its last failure (``recovery_s``).

    python bench/faults.py --rate 100 --seconds 240
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory

from machine_info import machine
from private_services import private_postgres, private_redis
from soak import RESULTS, Banks, Load, Receiver, Stack, scan_counter, verify_store


def inject(stack: Stack, load: Load, faults: list[dict], plan: list[tuple[float, str]], stop: threading.Event) -> None:
    """Run each fault of ``plan`` (seconds after the load's start, name) in turn, recording when it began and how
    long the injection itself took."""
    actions = {
        "postgres_restart": stack.pg.restart,
        "redis_restart": stack.redis.restart,
        "worker_kill": lambda: stack.kill_worker(next(n for n in stack.workers if not n.endswith("-beat"))),
        "server_kill": stack.kill_server,
    }
    for at, name in plan:
        while time.perf_counter() - load.t0 < at:
            if stop.wait(0.1):
                return
        began = time.perf_counter() - load.t0
        error = None
        try:
            actions[name]()
        except (Exception, SystemExit) as exc:  # a fault that could not be injected is reported, not fatal
            error = repr(exc)
        faults.append({"fault": name, "at_s": round(began, 2),
                       "injection_s": round(time.perf_counter() - load.t0 - began, 2), "error": error})  # fmt: skip


def recovery(load: Load, faults: list[dict], end: float) -> None:
    """Per fault, from the answers scheduled between it and the next fault: failures by status, first and last,
    and the recovery time (fault → first 2xx after its last failure; 0 when the clients saw nothing)."""
    for i, fault in enumerate(faults):
        # A request sent in the last second before a fault may be cut by it: each fault's window starts a second
        # before it and ends a second before the next one.
        start, until = fault["at_s"], faults[i + 1]["at_s"] - 1.0 if i + 1 < len(faults) else end
        failed: Counter = Counter()
        first = last = None
        for at, status in zip(load.at, load.status, strict=True):
            if start - 1.0 <= at < until and not 200 <= status < 300:
                failed["no_answer" if status == 0 else str(status)] += 1
                first = at if first is None else min(first, at)
                last = at if last is None else max(last, at)
        recovered = None
        if last is None:
            recovered = start
        else:
            recovered = min((at for at, status in zip(load.at, load.status, strict=True)
                             if at > last and 200 <= status < 300), default=None)  # fmt: skip
        fault.update({
            "client_failures": sum(failed.values()), "failures_by_status": dict(failed),
            "first_failure_s": None if first is None else round(first - start, 2),
            "last_failure_s": None if last is None else round(last - start, 2),
            "recovery_s": None if recovered is None else round(recovered - start, 2),
        })  # fmt: skip


def timeline(load: Load) -> list[list[int]]:
    """Per second of scheduled time: [second, acknowledged, failed] — what the clients saw around each fault."""
    seconds: dict[int, list[int]] = {}
    for at, status in zip(load.at, load.status, strict=True):
        row = seconds.setdefault(int(at), [int(at), 0, 0])
        row[1 if 200 <= status < 300 else 2] += 1
    return [seconds[k] for k in sorted(seconds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s")
    parser.add_argument("--seconds", type=float, default=240.0, help="length of the load; faults at 1/5 … 4/5")
    parser.add_argument("--chunk", type=float, default=5.0, help="seconds per load run (unanswered → retried)")
    parser.add_argument("--timeout", type=float, default=5.0, help="a request unanswered this long is retried")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--receiver-delay", type=float, default=2.0, help="seconds the webhook receiver takes")
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = parser.parse_args()
    names = ["postgres_restart", "redis_restart", "worker_kill", "server_kill"]
    plan = [(args.seconds * (i + 1) / (len(names) + 1), name) for i, name in enumerate(names)]
    run = secrets.token_hex(3)
    faults: list[dict] = []
    with TemporaryDirectory(prefix="safehold-faults-") as tmp, private_postgres() as pg, private_redis() as redis:
        receiver = Receiver(args.receiver_delay)
        stack = Stack(Path(tmp), pg, redis, workers=args.workers)
        try:
            admin, platform = stack.server.token("admin"), stack.server.token("platform")
            banks = Banks(stack.server.base, admin, run, receiver.url)
            load = Load(run, platform, retry=True)
            stop = threading.Event()
            injector = threading.Thread(target=inject, args=(stack, load, faults, plan, stop))
            changer = threading.Thread(
                target=lambda: asyncio.run(banks.every_second(args.seconds, True, lambda: stack.server.base))
            )
            print(f"faults: {args.rate:g} requests/s for {args.seconds:g} s; {plan}", file=sys.stderr)
            injector.start()
            changer.start()
            base = lambda: stack.server.base  # noqa: E731
            asyncio.run(load.chunks(base, args.rate, args.seconds, args.chunk, args.timeout))
            injector.join()
            changer.join()
            end = time.perf_counter() - load.t0
            rounds = 0
            while load.pending and rounds < 30:  # the retries still owed, at the same rate
                rounds += 1
                owed = len(load.pending) / args.rate + 1e-6
                asyncio.run(load.chunks(base, args.rate, owed, owed, args.timeout))
            recovery(load, faults, end)
            bank_check = banks.verify()
            store = verify_store(pg.url, load, receiver)
            alive = {"server": stack.server.proc.poll() is None,
                     **{n: p.poll() is None for n, p in stack.workers.items()}}  # fmt: skip
        finally:
            stop.set()
            stack.stop()
            receiver.close()
        counted = scan_counter(pg.url)
        out = {
            "benchmark": "faults",
            "machine": machine(),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "rate": args.rate, "seconds": args.seconds, "workers": args.workers,
            "receiver_delay_s": args.receiver_delay,
            "faults": faults,
            "statuses": load.statuses(),
            "retries_sent": load.retries, "still_unacknowledged": len(load.pending),
            "store": store,
            "scan_counter": {"counted": counted, "acknowledged_scans": store["acknowledged"]["scan"],
                             "lookups": banks.looked_up,
                             "note": "a killed server loses the counts it had not flushed; a retried scan counts "
                                     "again: counters are not items"},
            "bank_changes": bank_check,
            "alive_at_end": alive,
            "timeline": timeline(load),
        }  # fmt: skip
        out["ok"] = bool(store["ok"] and not load.pending and all(alive.values())
                         and not any(f["error"] for f in faults)
                         and bank_check["present_not_matching"] == 0
                         and bank_check["removed_still_matching"] == 0)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("machine", "timeline")}, indent=2))


if __name__ == "__main__":
    main()
