"""Memory across index reloads (HMA's open issue #1813: its server grows on every index reload).

A bank of ``--hashes`` random PDQ hashes (1 M by default) is imported through the bulk import path, a real
``safehold serve`` starts on it, then a stream of bank changes goes through the API for ``--minutes``: every
second ``--changes`` changes, half adds of new hashes and half removals of hashes added earlier, each applied by
every server process from the change log. The server's resident memory is sampled every ``--sample-seconds``;
the result is its least-squares slope in MB/min (over the whole run and after the first minute, when the
allocator has reached its working set), the index's own memory from ``/metrics``, and whether matching is still
right at the end (hashes of the original bank, hashes added during the run, and removed ones, looked up).

    python bench/index_reload.py --minutes 10 --out bench/results/index_reload.json
    python bench/index_reload.py --database-url postgresql+psycopg://postgres@127.0.0.1/reload --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
from machine_info import machine  # noqa: E402
from server import Server  # noqa: E402

BANK = "reload"
#: Original hashes looked up at the end (each must match), and hashes of the run looked up.
CHECKS = 200
#: Changes sent at once (each is one request; the server applies them from the change log).
CLIENT_THREADS = 8


def random_hashes(n: int, rng: random.Random) -> list[str]:
    return [f"{rng.getrandbits(256):064x}" for _ in range(n)]


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(minute, MB)`` points, in MB/min."""
    if len(points) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return round(sum((x - mx) * (y - my) for x, y in points) / var, 3) if var else None


def index_memory_mb(client: httpx.Client) -> float | None:
    m = re.search(r"^safehold_index_memory_bytes (\S+)", client.get("/metrics").text, re.M)
    return round(float(m.group(1)) / 1e6, 1) if m else None


def matches(client: httpx.Client, value: str) -> bool:
    r = client.post("/v1/scan", json={"signal_type": "pdq", "value": value})
    r.raise_for_status()
    return any(m["entry"]["value"] == value for m in r.json()["matches"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hashes", type=int, default=1_000_000, help="PDQ hashes in the bank")
    ap.add_argument("--minutes", type=float, default=10.0, help="minutes of changes")
    ap.add_argument("--changes", type=int, default=100, help="bank changes per second (half adds, half removals)")
    ap.add_argument("--sample-seconds", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--workers", type=int, default=1, help="API processes (serve --workers)")
    ap.add_argument("--database-url", default=None, help="default: SQLite in a fresh home")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "index_reload.json")
    ap.add_argument("--seed", type=int, default=1813)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    home = Path(tempfile.mkdtemp(prefix="safehold-reload-"))
    env = {"SAFEHOLD_WEB_WORKERS": str(args.workers)}
    if args.database_url:
        env["SAFEHOLD_DATABASE_URL"] = args.database_url
    original = random_hashes(args.hashes, rng)
    hash_file = home / "bank.txt"
    hash_file.write_text("\n".join(original) + "\n")
    t0 = time.monotonic()
    server = Server(home, env=env, log=home / "server.log")
    server.cli("bank", "create", BANK)
    server.cli("bank", "import", BANK, str(hash_file), "--format", "list", "--signal-type", "pdq")
    import_seconds = time.monotonic() - t0
    hash_file.unlink()
    client = httpx.Client(base_url=server.base, headers=server.key("admin"), timeout=60)
    try:
        deadline = time.monotonic() + 600
        while client.get("/readyz").json()["indexes"].get("pdq", {}).get("changes_behind", 1):
            if time.monotonic() > deadline:
                raise SystemExit("the index never caught up with the import")
            time.sleep(1)
        pool = ThreadPoolExecutor(CLIENT_THREADS)

        def add(value: str) -> httpx.Response:
            return client.post(f"/v1/banks/{BANK}/entries", json={"signal_type": "pdq", "value": value})

        def remove(entry: tuple[int, str]) -> int:
            return client.delete(f"/v1/entries/{entry[0]}").status_code

        samples: list[dict] = []
        live: list[tuple[int, str]] = []  # (entry id, value) added during the run and not removed
        removed: list[str] = []
        errors = 0
        start = time.monotonic()
        next_sample = start
        second = 0
        while time.monotonic() - start < args.minutes * 60:
            now = time.monotonic()
            if now >= next_sample:
                samples.append({"minute": round((now - start) / 60, 3), "rss_mb": loadgen.rss_mb(server.proc.pid),
                                "index_mb": index_memory_mb(client)})  # fmt: skip
                next_sample += args.sample_seconds
            values = [f"{rng.getrandbits(256):064x}" for _ in range(args.changes // 2)]
            for value, r in zip(values, pool.map(add, values), strict=True):
                if r.status_code == 201:
                    live.append((r.json()["id"], value))
                else:
                    errors += 1
            gone = [live.pop(rng.randrange(len(live) - CHECKS)) for _ in range(min(args.changes // 2,
                                                                                   len(live) - CHECKS))]  # fmt: skip
            for (_, value), status in zip(gone, pool.map(remove, gone), strict=True):
                if status == 200:
                    removed.append(value)
                else:
                    errors += 1
            second += 1
            if (sleep := start + second - time.monotonic()) > 0:
                time.sleep(sleep)
        elapsed = (time.monotonic() - start) / 60
        pool.shutdown()
        time.sleep(2)  # every process has applied the last changes (synced twice a second)
        correct = {
            "original_matched": sum(matches(client, v) for v in rng.sample(original, min(CHECKS, len(original)))),
            "added_matched": sum(matches(client, v) for _, v in live[-CHECKS:]),
            "removed_matched": sum(matches(client, v) for v in removed[-CHECKS:]),
        }
        checked = {"original": min(CHECKS, len(original)), "added": len(live[-CHECKS:]),
                   "removed": len(removed[-CHECKS:])}  # fmt: skip
    finally:
        client.close()
        server.stop()
    points = [(s["minute"], s["rss_mb"]) for s in samples]
    settled = [p for p in points if p[0] >= 1.0]
    result = {
        "benchmark": "index_reload",
        "machine": machine(),
        "params": vars(args) | {"out": str(args.out), "database_url": bool(args.database_url)},
        "import_seconds": round(import_seconds, 1),
        "minutes": round(elapsed, 2),
        "changes_applied": len(removed) + len(live),
        "changes_per_second": round((len(removed) + len(live)) / (elapsed * 60), 1),
        "change_errors": errors,
        "rss_start_mb": points[0][1] if points else None,
        "rss_end_mb": points[-1][1] if points else None,
        "rss_slope_mb_per_min": slope(points),
        "rss_slope_after_first_minute_mb_per_min": slope(settled),
        "matching": correct | {"checked": checked},
        "matching_correct": correct["original_matched"] == checked["original"]
        and correct["added_matched"] == checked["added"]
        and correct["removed_matched"] == 0,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "machine")}, indent=2))


if __name__ == "__main__":
    main()
