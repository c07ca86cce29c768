"""The group-commit writer's CPU per item, without HTTP: what a batch of chat messages or events costs the
committer thread (``time.thread_time`` of that thread alone, so other processes on a shared machine change the
figure much less than a server's wall-clock latency), at a few batch sizes.

Each round submits ``batch`` items at once to one writer (``SAFEHOLD_GROUP_COMMIT_WRITERS=1``) and waits for them,
so every transaction holds exactly ``batch`` items; the items are the ones ``bench/intake.py`` sends (chat messages
over 1,000 conversations; content events, every 10th with a platform signal that opens a case). Also reported:
the CPU of the request side's own part (``work()``: parse, check, rule) in the submitting thread.

Usage: ``.venv/bin/python bench/intake_writer.py --database-url postgresql+psycopg://postgres@127.0.0.1/writer_bench
[--batches 1,10,50] [--items 2000] [--out bench/results/intake_writer.json]`` (the database must be empty or new).
``--src`` measures another checkout's code the same way (say the main branch's, for a before/after).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from machine_info import machine  # noqa: E402


def measure(url: str, door: str, items: int, batch: int) -> dict:
    from safehold.auth.apikeys import Principal
    from safehold.config import Settings
    from safehold.services import Services
    from safehold.store import groupcommit
    from safehold.store.migrate import upgrade

    svc = Services(Settings(home=Path(tempfile.mkdtemp()), database_url=url, group_commit_ms=2, group_commit_writers=1))
    upgrade(svc.db)
    platform = Principal(name="platform", role="platform", key_prefix="sh_bench")
    spent = [0.0]
    commit = groupcommit.GroupCommit._commit

    def timed(self, items):  # the writer thread's CPU for each batch it commits
        start = time.thread_time()
        try:
            return commit(self, items)
        finally:
            spent[0] += time.thread_time() - start

    groupcommit.GroupCommit._commit = timed
    run = f"{door}{batch}-{time.time_ns()}"

    def work(i: int):
        if door == "messages":
            body = {"id": f"m{i}", "author": f"u{i % 7}", "text": f"see you at practice tomorrow {i}"}
            return svc.conversations.work("apikey:bench", f"{run}-c{i % 1000}", body)
        event = {
            "type": "content",
            "idempotency_key": f"{run}-e{i}",
            "content": {"id": f"{run}-post-{i}", "media_type": "image"},
            "account": {"id": f"{run}-u{i % 1000}"},
        }
        if i % 10 == 0:
            event["signals"] = [{"source": "user_report", "confidence": 0.4, "label": "platform-report"}]
        return svc.events.work(platform, event, None)

    try:
        for f in [svc.writes.submit(*work(-1 - i)) for i in range(batch)]:  # warm: connections, caches
            f.result()
        spent[0] = 0.0
        request_side = 0.0
        wall = time.perf_counter()
        for first in range(0, items, batch):
            start = time.thread_time()
            futures = [svc.writes.submit(*work(i)) for i in range(first, min(items, first + batch))]
            request_side += time.thread_time() - start
            for f in futures:
                f.result()
        wall = time.perf_counter() - wall
    finally:
        groupcommit.GroupCommit._commit = commit
        svc.close()
    return {
        "door": door,
        "batch": batch,
        "items": items,
        "writer_cpu_ms_per_item": round(spent[0] * 1000 / items, 3),
        "request_side_cpu_ms_per_item": round(request_side * 1000 / items, 3),
        "wall_ms_per_batch": round(wall * 1000 / -(-items // batch), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", required=True, help="PostgreSQL (or SQLite) URL of an empty database")
    ap.add_argument("--batches", default="1,10,50")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--out", default=str(REPO / "bench/results/intake_writer.json"))
    ap.add_argument("--src", default=str(REPO / "src"), help="the safehold source tree to measure")
    args = ap.parse_args()
    sys.path.insert(0, args.src)
    runs = []
    for batch in (int(b) for b in args.batches.split(",")):
        for door in ("messages", "events"):
            runs.append(measure(args.database_url, door, args.items if batch > 1 else args.items // 4, batch))
            print(runs[-1], flush=True)
    out = {"machine": machine(), "database": args.database_url.split(":", 1)[0], "src": args.src, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
