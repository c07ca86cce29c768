"""Re-matching benchmark: new bank entries against the stored hashes of past uploads (safehold.sharing.rematch).

Two parts, each case in its own subprocess (clean peak RSS):

``match`` (in memory, the stored hashes never touch a database): ``--stored`` random 256-bit PDQ hashes, ``--new``
new entries, and ``--planted`` of the stored hashes planted at 0..``MAX_PLANT_DISTANCE`` bits from a new entry (the
uploads re-matching must find; recall is over them). Three ways, the stored hashes taken ``rematch.CHUNK`` at a
time:

- ``rematch``: what a round does: :func:`safehold.sharing.rematch.candidates`, each stored hash a ``Seen`` row
  with its hex value as the database read hands them over (it indexes each chunk, the new entries the queries);
- ``chunk-indexed``: the same direction on raw ``uint8`` arrays straight to PdqIndex (the matching alone);
- ``entries-indexed``: the other direction: one PdqIndex over the new entries, every stored hash a query (run on
  ``--entries-indexed-stored`` hashes: it is too slow for 10 M on a shared machine; the rate is per hash).

``db`` (a real database): ``--rows`` stored hashes written to a fresh SQLite file or PostgreSQL database (migrated
to head), then the table's size on disk with its indexes (bytes per stored hash), and one full re-match pass as a
round reads it: :meth:`SeenHashes.read` (``rematch.CHUNK`` rows per query) through ``candidates``.

Usage::

    python bench/rematch.py --stored 10000000 --new 10000 --db-rows 1000000 --out bench/results/rematch.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from machine_info import machine

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 31
MAX_PLANT_DISTANCE = 24
WRITE_BATCH = 50_000  # rows per insert when filling a database
PG_ADMIN = os.environ.get("SAFEHOLD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def make_data(n_stored: int, n_new: int, n_planted: int, seed: int = 20261203):
    """(stored (N,32) uint8, new (K,32) uint8, planted positions in stored, the new entry each was planted near)."""
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 256, size=(n_stored, 32), dtype=np.uint8)
    new = rng.integers(0, 256, size=(n_new, 32), dtype=np.uint8)
    where = rng.choice(n_stored, size=n_planted, replace=False)
    near = rng.choice(n_new, size=n_planted, replace=False)
    bits = np.unpackbits(new[near], axis=1)
    for i in range(n_planted):
        flip = rng.choice(256, size=int(rng.integers(0, MAX_PLANT_DISTANCE + 1)), replace=False)
        bits[i, flip] ^= 1
    stored[where] = np.packbits(bits, axis=1)
    return stored, new, where, near


def _entries(new: np.ndarray):
    from safehold.sharing.rematch import NewEntry

    at = dt.datetime.now(dt.UTC)
    return [NewEntry(i + 1, i + 1, "pdq", new[i].tobytes().hex(), at) for i in range(len(new))]


def _recall(pairs: set[tuple[int, int]], where, near) -> float:
    """Share of planted (stored row, new entry) pairs found; ``pairs`` holds (stored row, new entry index)."""
    want = {(int(w), int(n)) for w, n in zip(where, near, strict=True)}
    return round(len(want & pairs) / len(want), 4) if want else 1.0


def run_match(args, data=None) -> dict:
    stored, new, where, near = data or make_data(args.stored, args.new, args.planted)
    base_rss = peak_rss_mb()
    if not args.warm:  # compile the kernels first (numba, on first call): the same run on a slice, untimed
        warm = argparse.Namespace(**{**vars(args), "warm": True, "stored": min(args.stored, 2 * WRITE_BATCH)})
        run_match(warm, (stored[: warm.stored], new, where[where < warm.stored], near[where < warm.stored]))
    return _match(args, stored, new, where, near, base_rss)


def _match(args, stored, new, where, near, base_rss) -> dict:
    from safehold.matching.pdq_index import PdqIndex
    from safehold.sharing.rematch import CHUNK, candidates
    from safehold.store.seen import Seen

    t0 = time.perf_counter()
    pairs: set[tuple[int, int]] = set()
    if args.way == "rematch":
        at = dt.datetime.now(dt.UTC)

        def chunks():
            for lo in range(0, len(stored), CHUNK):
                part = stored[lo : lo + CHUNK]
                hexes = part.tobytes().hex()
                yield [Seen(lo + i, "pdq", hexes[64 * i : 64 * i + 64], "c", None, at) for i in range(len(part))]

        for c in candidates(_entries(new), {"pdq": THRESHOLD}, chunks()):
            pairs.add((c.seen.id, c.entry_id - 1))
    elif args.way == "entries-indexed":
        index = PdqIndex()
        index.add(np.arange(len(new), dtype=np.int64), new)
        for lo in range(0, len(stored), CHUNK):
            ids, _, offs = index.query_batch_arrays(stored[lo : lo + CHUNK], THRESHOLD)
            rows = np.repeat(np.arange(len(offs) - 1), np.diff(offs)) + lo
            pairs.update(zip(rows.tolist(), ids.tolist(), strict=True))
    else:  # chunk-indexed
        for lo in range(0, len(stored), CHUNK):
            index = PdqIndex()
            part = stored[lo : lo + CHUNK]
            index.add(np.arange(lo, lo + len(part), dtype=np.int64), part)
            ids, _, offs = index.query_batch_arrays(new, THRESHOLD)
            queries = np.repeat(np.arange(len(offs) - 1), np.diff(offs))
            pairs.update(zip(ids.tolist(), queries.tolist(), strict=True))
    seconds = time.perf_counter() - t0
    return {
        "part": "match",
        "way": args.way,
        "stored": len(stored),
        "new": args.new,
        "planted": len(where),
        "threshold": THRESHOLD,
        "chunk": CHUNK,
        "seconds": round(seconds, 2),
        "stored_per_second": round(len(stored) / seconds),
        "matches": len(pairs),
        "recall_planted": _recall(pairs, where, near),
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_data_only": base_rss,
    }


def _database(backend: str, tmp: Path):
    """A fresh database migrated to head: its URL and how to drop it."""
    from safehold.store import migrate
    from safehold.store.db import Database

    if backend == "sqlite":
        path = tmp / f"rematch-{uuid.uuid4().hex[:8]}.db"
        url, drop = f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    else:
        import psycopg

        name = f"safehold_bench_rematch_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"

        def drop():
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    db = Database(url)
    migrate.upgrade(db)
    return db, drop


def run_db(args) -> dict:
    from sqlalchemy import insert, text

    from safehold.sharing.rematch import CHUNK, candidates
    from safehold.store.models import SeenHash
    from safehold.store.seen import Seen, SeenHashes, table_bytes

    stored, new, where, near = make_data(args.rows, args.new, args.planted)
    db, drop = _database(args.backend, Path(args.tmp))
    try:
        now = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        for lo in range(0, len(stored), WRITE_BATCH):
            rows = [
                {
                    "signal_type": "pdq",
                    "value": stored[i].tobytes(),
                    "content_id": f"post/{i:012d}",  # a 17-character content id
                    "account_id": f"acct/{i % 100_000:08d}",  # a 13-character account id
                    "seen_at": now - dt.timedelta(seconds=len(stored) - i),
                }
                for i in range(lo, min(lo + WRITE_BATCH, len(stored)))
            ]
            with db.session() as s:
                s.execute(insert(SeenHash), rows)
        write = time.perf_counter() - t0
        with db.engine.connect() as conn:
            if args.backend == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE seen_hashes"))
            else:
                conn.execute(text("VACUUM"))
        with db.session() as s:
            size = table_bytes(s, "seen_hashes")
        seen = SeenHashes(db, enabled=True, days=90)
        # Compile the kernels first, untimed: the same matching on a chunk like the first one, without the database.
        warm = [Seen(i, "pdq", stored[i].tobytes().hex(), "c", None, now) for i in range(min(len(stored), CHUNK))]
        list(candidates(_entries(new), {"pdq": THRESHOLD}, [warm]))
        del warm
        t0 = time.perf_counter()
        pairs = {
            (c.seen.id - 1, c.entry_id - 1)
            for c in candidates(_entries(new), {"pdq": THRESHOLD}, seen.read(["pdq"], chunk=CHUNK))
        }
        seconds = time.perf_counter() - t0
    finally:
        db.dispose()
        drop()
    return {
        "part": "db",
        "backend": args.backend,
        "rows": args.rows,
        "new": args.new,
        "planted": args.planted,
        "write_seconds": round(write, 1),
        "table_bytes": size,
        "bytes_per_hash": round(size / args.rows, 1) if size else None,
        "rematch_seconds": round(seconds, 2),
        "rows_per_second": round(args.rows / seconds),
        "matches": len(pairs),
        "recall_planted": _recall(pairs, where, near),
        "peak_rss_mb": peak_rss_mb(),
    }


def child(argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}
    out = subprocess.run(
        [sys.executable, __file__, *argv], env=env, check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stored", type=int, default=10_000_000)
    p.add_argument("--new", type=int, default=10_000)
    p.add_argument("--planted", type=int, default=1_000)
    p.add_argument("--db-rows", type=int, default=1_000_000)
    p.add_argument("--ways", default="rematch,chunk-indexed,entries-indexed")
    p.add_argument("--entries-indexed-stored", type=int, default=1_000_000, help="stored hashes for that way (slow)")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/rematch.json")
    p.add_argument("--tmp", default="/tmp")
    p.add_argument("--child", choices=("match", "db"))
    p.add_argument("--way")
    p.add_argument("--backend")
    p.add_argument("--rows", type=int)
    p.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "match":
        print(json.dumps(run_match(args)))
        return
    if args.child == "db":
        print(json.dumps(run_db(args)))
        return
    common = ["--new", str(args.new), "--planted", str(args.planted), "--tmp", args.tmp]
    results = {"machine": machine(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "runs": []}
    for way in filter(None, args.ways.split(",")):
        n = args.entries_indexed_stored if way == "entries-indexed" else args.stored
        run = child(["--child", "match", "--way", way, "--stored", str(n), *common])
        print(json.dumps(run), file=sys.stderr)
        results["runs"].append(run)
    for backend in filter(None, args.backends.split(",")):
        run = child(["--child", "db", "--backend", backend, "--rows", str(args.db_rows), *common])
        print(json.dumps(run), file=sys.stderr)
        results["runs"].append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
