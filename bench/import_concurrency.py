"""A bulk bank import next to other writers: how long the import takes and how long a writer waits meanwhile.

One SQLite store (the embedded default) gets a bank and an N-row CSV of MD5 hashes (default 1,000,000). While
``BankService.import_stream`` imports it, a *separate process* (as the API server or the webhook dispatcher
would be) appends one audit record every 100 ms and times each append (commit included): the longest of those
waits is what intake or the dispatcher would have waited. The same process polls the index change log to see
when the first imported entries become matchable (an in-memory index replays that log).

Figures: ``import_seconds`` (the whole import, validation included), ``writer.max_ms`` / ``p99_ms`` /
``p50_ms`` (wait of each concurrent append), ``writer.errors`` ("database is locked" and the like),
``first_change_after_s`` (seconds from import start to the first change-log row visible to another process).

Usage: ``PYTHONPATH=src .venv/bin/python bench/import_concurrency.py [--rows N] [--batch N] [--out FILE]``
The "before" figure in docs/benchmarks.md was measured by running this script against the previous commit's ``src``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402


def writer(url: str, stop_file: str, interval: float) -> None:
    """The concurrent writer (its own process): an audit record every ``interval`` s until ``stop_file`` exists;
    prints JSON ``{"waits": [...], "errors": [...], "first_change_at": t}``."""
    from sqlalchemy import func, select

    from safehold.audit import AuditService
    from safehold.store.db import Database
    from safehold.store.models import IndexChange

    db = Database(url)
    audit = AuditService(db)
    with db.session() as s:
        base = s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0)))
    print("ready", flush=True)
    waits, errors, first_change_at = [], [], None
    i = 0
    while not os.path.exists(stop_file):
        t0 = time.perf_counter()
        try:
            audit.record(None, "bench", "bench.tick", f"tick:{i}", {"i": i})
            waits.append((time.time(), time.perf_counter() - t0))
        except Exception as exc:  # noqa: BLE001 - what a real writer would log
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            waits.append((time.time(), time.perf_counter() - t0))
        if first_change_at is None:
            with db.session() as s:
                if (s.scalar(select(func.coalesce(func.max(IndexChange.seq), 0))) or 0) > base:
                    first_change_at = time.time()
        i += 1
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    db.dispose()
    print(json.dumps({"waits": waits, "errors": errors, "first_change_at": first_change_at}), flush=True)


def make_csv(path: Path, rows: int) -> None:
    with open(path, "w") as f:
        f.write("signal_type,value,source,external_id\n")
        for i in range(rows):
            f.write(f"md5,{secrets.token_hex(16)},bench,{i}\n")


def run(rows: int, batch: int | None, interval: float) -> dict:
    from safehold.config import Settings
    from safehold.services import Services

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = tmp / "bank.csv"
        t = time.perf_counter()
        make_csv(csv_path, rows)
        gen_s = time.perf_counter() - t
        env = {}
        if batch is not None:
            env["import_batch_rows"] = batch
        settings = Settings(home=tmp / "home", **env)
        settings.home.mkdir(mode=0o700)
        svc = Services(settings, load_index=False)
        svc.banks.create("bench", created_by="bench")
        url = settings.effective_database_url
        stop = tmp / "stop"
        proc = subprocess.Popen(
            [sys.executable, __file__, "--writer", url, str(stop), str(interval)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # a few unloaded appends first
        started = time.time()
        t = time.perf_counter()
        with open(csv_path, "rb") as f:
            report = svc.banks.import_stream("bench", f, fmt="csv", added_by="bench")
        import_s = time.perf_counter() - t
        ended = time.time()
        time.sleep(1.0)
        stop.touch()
        out = json.loads(proc.stdout.read().strip().splitlines()[-1])
        proc.wait()
        during = [w for at, w in out["waits"] if started <= at <= ended + 30]
        before = [w for at, w in out["waits"] if at < started]
        ms = sorted(1000 * w for w in during) or [0.0]
        count = svc.banks.get("bench").entries
        svc.close()
        first = out["first_change_at"]
        return {
            "rows": rows,
            "csv_mb": round(csv_path.stat().st_size / 1e6, 1),
            "generate_seconds": round(gen_s, 1),
            "batch_rows": getattr(settings, "import_batch_rows", None),
            "import_seconds": round(import_s, 1),
            "rows_per_second": round(rows / import_s),
            "added": report.added,
            "entries_after": count,
            "committed": report.committed,
            "writer": {
                "interval_ms": interval * 1000,
                "appends_during_import": len(during),
                "idle_p50_ms": round(statistics.median(1000 * w for w in before), 1) if before else None,
                "p50_ms": round(statistics.median(ms), 1),
                "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
                "max_ms": round(ms[-1], 1),
                "errors": len(out["errors"]),
                "error_samples": sorted(set(out["errors"]))[:3],
            },
            "first_change_after_s": round(first - started, 2) if first else None,
        }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=None, help="SAFEHOLD_IMPORT_BATCH_ROWS (default: the setting's)")
    ap.add_argument("--interval", type=float, default=0.1, help="Seconds between the writer's appends.")
    ap.add_argument("--label", default=None, help="Stored with the result (e.g. 'before').")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "import_concurrency.json")
    args = ap.parse_args()
    result = {
        "benchmark": "import_concurrency",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "label": args.label,
        "sqlite": run(args.rows, args.batch, args.interval),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
