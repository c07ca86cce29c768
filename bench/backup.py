"""How long ``safehold backup`` takes on a store of a given size: create, verify and restore (with its checks).

A fresh SQLite store holds ``--items`` preserved evidence documents of ``--size`` random bytes each (benign: random
bytes sealed as ``document`` evidence, no case), so the evidence folder holds that many sealed files and the
audit log one record per item. The figures are wall time of each step, once, and the archive's size; restore
includes its checks (audit chain, every evidence item decrypted and hashed).

Usage: ``.venv/bin/python bench/backup.py [--items 2000] [--size 65536] [--out bench/results/backup.json]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402
from safehold.backup import service  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.services import Services  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--size", type=int, default=65536)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "backup.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        svc = Services(Settings(home=tmp / "home"), create=True, load_index=False)
        for i in range(args.items):
            svc.evidence.preserve_bytes(None, f"bench:{i}", os.urandom(args.size), kind="document", actor="bench")
        archive, keys = tmp / "store.backup", tmp / "store.keys"
        manifest, create_s = timed(lambda: service.create(svc, archive, keys_out=keys))
        svc.close()
        _, verify_s = timed(lambda: service.verify(archive))
        target = Settings(home=tmp / "restored", database_url=None)
        result, restore_s = timed(lambda: service.restore(archive, target, keys=keys))
        assert result["ok"] and result["evidence"]["checked"] == args.items, result
        mib = archive.stat().st_size / 2**20
        out = {
            "benchmark": "backup",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "engine": "sqlite",
            "items": args.items,
            "item_bytes": args.size,
            "archive_mib": round(mib, 1),
            "database_bytes": manifest["counts"]["database_bytes"],
            "create_seconds": create_s,
            "verify_seconds": verify_s,
            "restore_and_check_seconds": restore_s,
            "create_mib_per_s": round(mib / create_s, 1),
            "verify_mib_per_s": round(mib / verify_s, 1),
        }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
