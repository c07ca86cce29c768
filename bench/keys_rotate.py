"""How fast ``safehold keys rotate`` re-wraps a store, and how much memory it takes.

A fresh store (SQLite by default, or ``--database-url``) is seeded with ``--sealed`` values sealed by the instance
key (webhook signing secrets, inserted directly) and ``--evidence`` evidence files of ``--size`` random bytes
(benign: random bytes sealed by the evidence key, straight into the evidence store). Each rotation then runs in
its own process, so its peak RSS (``ru_maxrss``) is the rotation's alone: a new key, the wait of
``SAFEHOLD_KEY_CHECK_SECONDS`` (set to 0 here, so the figure is the re-wrap itself) and one pass over every item.
Evidence is re-wrapped, never re-encrypted: each file's header is rewritten and its ciphertext copied.

Usage: ``.venv/bin/python bench/keys_rotate.py [--sealed 10000] [--evidence 10000] [--size 65536] [--batch 200]
[--database-url URL] [--out bench/results/keys_rotate.json]``
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.services import Services  # noqa: E402

SEED_BATCH = 1000


def seed(settings: Settings, sealed: int, evidence: int, size: int) -> None:
    from safehold.store.models import Webhook

    svc = Services(settings, create=True, load_index=False)
    try:
        for start in range(0, sealed, SEED_BATCH):
            rows = [
                Webhook(
                    name=f"bench-{i}",
                    url="https://receiver.example/hook",
                    secret_encrypted=svc.sealer.seal_text(base64.b64encode(os.urandom(32)).decode(), b"webhook"),
                )
                for i in range(start, min(sealed, start + SEED_BATCH))
            ]
            with svc.db.session() as s:
                s.add_all(rows)
        for _ in range(evidence):
            svc.evidence_store.put(os.urandom(size))
    finally:
        svc.close()


def rotate_here(settings: Settings, which: str, batch: int) -> dict:
    """One rotation in this process: its figures and this process's peak RSS."""
    from safehold.keys import rotation

    svc = Services(settings, load_index=False)
    try:
        start = time.perf_counter()
        result = rotation.rotate(svc, which, batch=batch, actor="bench")
        seconds = time.perf_counter() - start
    finally:
        svc.close()
    items = result["rewrapped"] + result["unchanged"]
    return {
        "which": which,
        "items": items,
        "rewrapped": result["rewrapped"],
        "seconds": round(seconds, 3),
        "items_per_s": round(items / seconds, 1) if seconds else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sealed", type=int, default=10_000, help="values sealed by the instance key")
    p.add_argument("--evidence", type=int, default=10_000, help="evidence files")
    p.add_argument("--size", type=int, default=65536, help="bytes per evidence file")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temporary home)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "keys_rotate.json")
    p.add_argument("--rotate-in", type=Path, help=argparse.SUPPRESS)  # internal: the child process's home
    p.add_argument("--which", default="instance", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rotate_in:
        settings = Settings(home=args.rotate_in, database_url=args.database_url, key_check_seconds=0)
        print(json.dumps(rotate_here(settings, args.which, args.batch)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, database_url=args.database_url, key_check_seconds=0)
        start = time.perf_counter()
        seed(settings, args.sealed, args.evidence, args.size)
        seed_s = round(time.perf_counter() - start, 1)
        runs = {}
        for which in ("instance", "evidence"):
            cmd = [sys.executable, __file__, "--rotate-in", str(home), "--which", which, "--batch", str(args.batch)]
            cmd += ["--database-url", args.database_url] if args.database_url else []
            child = subprocess.run(cmd, check=True, capture_output=True, text=True)
            runs[which] = json.loads(child.stdout.strip().splitlines()[-1])
    out = {
        "benchmark": "keys_rotate",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "engine": "postgresql" if args.database_url else "sqlite",
        "sealed_values": args.sealed,
        "evidence_files": args.evidence,
        "evidence_file_bytes": args.size,
        "batch": args.batch,
        "seed_seconds": seed_s,
        "instance": runs["instance"],
        "evidence": runs["evidence"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
