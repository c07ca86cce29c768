"""How fast an account's age band is read in process: what the contact policy pays per message check.

On a fresh SQLite store with ``--accounts`` accounts (each with one signal, a quarter of them minors): the
``band()`` rate on cache hits (the steady state of a messaging path), on misses (``SAFEHOLD_AGE_CACHE_TTL_SECONDS=0``:
one indexed read per call), and ``bands()`` of 100 accounts at once, uncached. One thread; each figure is the best
of ``--repeat`` runs.

Usage: ``.venv/bin/python bench/ages.py [--accounts 10000] [--out bench/results/ages.json]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.services import Services  # noqa: E402
from safehold.store import migrate  # noqa: E402


def rate(calls: int, fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return calls / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--calls", type=int, default=50_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ages.json")
    args = p.parse_args()
    rng = random.Random(10)
    with tempfile.TemporaryDirectory() as home:
        svc = Services(Settings(home=Path(home)), create=True)
        migrate.upgrade(svc.db)
        ids = [f"acct-{i}" for i in range(args.accounts)]
        for i, a in enumerate(ids):
            svc.ages.record("bench", a, "platform", band="13-15" if i % 4 == 0 else "adult")
        picks = [rng.choice(ids) for _ in range(args.calls)]
        book = svc.ages
        book.bands(ids)  # warm: every account cached

        def hits():
            for a in picks:
                book.band(a)

        hit_rate = rate(len(picks), hits, args.repeat)
        book.cache.ttl = 0
        book.cache.clear()
        few = picks[: max(1, args.calls // 20)]

        def misses():
            for a in few:
                book.band(a)

        miss_rate = rate(len(few), misses, args.repeat)
        batches = [picks[i : i + 100] for i in range(0, len(few), 100)]

        def batched():
            for b in batches:
                book.bands(b)

        batch_rate = rate(len(batches), batched, args.repeat)
        svc.close()
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "accounts": args.accounts,
        "band_per_second_cached": round(hit_rate),
        "band_per_second_uncached_sqlite": round(miss_rate),
        "bands_of_100_per_second_uncached_sqlite": round(batch_rate, 1),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
