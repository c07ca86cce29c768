"""Hash-exchange benchmark: a full NCMEC fetch into a bank, and how soon a server matches what a later fetch brought.

One run, one machine, a fresh local stand-in of NCMEC's Hash Sharing API v2 per case (its own process,
``--entries`` synthetic entries, 1000 a page, in NCMEC's non-time order; NCMEC's real API is never contacted):

``full`` (per backend, SQLite file and a fresh PostgreSQL database ``bench_exchange_<pid>`` on the local server,
dropped after): the real path, ``svc.exchanges.create(...)`` of an ``ncmec`` exchange feeding a bank, then one
``fetch_once`` round from the beginning, in its own process: seconds, entries/s and peak RSS (``ru_maxrss``, with
the RSS once Safehold is imported and the store open). Every batch (page) is written into the bank, its checkpoint
and counters in one transaction, and each entry's fingerprints become bank entries (about 2.9 per entry).

``peer`` (same run, its own stand-in): python-threatexchange's NCMEC client, ``NCMECSignalExchangeAPI.fetch_iter``
(the fetch path Meta's HMA runs), via ``bench/ncmec_fetch.py``'s peer client. Its figure is the client's fetch and
parse only: HMA then stores the deltas in its own database, which is not run here, so it is a lower bound of HMA's
time and memory for the same list.

``incremental`` (per backend, on the bank the full fetch filled): a *server* process (a second ``Services`` on the
same store, its index loaded, syncing it from the change log every ``index_sync_interval`` as the ``index.sync``
task does) is started; then, ``--runs`` times: the stand-in gets ``--changes`` changes (80 % new entries with MD5,
SHA-1 and PDQ, 10 % deletions, 10 % updates giving an entry a new PDQ), the server is told the last new PDQ (and
checks it does not match yet), and one ``fetch_once`` round runs in the orchestrating process. Figures: (a) the
round's seconds, (b) seconds from the round's start until the server's scan of that PDQ (polled every
``POLL_SECONDS``) answers a match: p50 and max over the runs.

Usage::

    python bench/exchange_sync.py --entries 2000000 --out bench/results/exchange_sync.json
    python bench/exchange_sync.py --entries 50000 --out bench/results/exchange_sync_quick.json   # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from machine_info import machine  # noqa: E402
from ncmec_fetch import PASSWORD, SPREAD_END_AGO, USER  # noqa: E402

PG_ADMIN = os.environ.get("SAFEHOLD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
EXCHANGE, BANK = "ncmec", "ncmec-list"
#: How often the server scans the watched hash while waiting for it to match.
POLL_SECONDS = 0.01
#: Longest wait for a change to become matchable before the run is declared failed.
MATCH_TIMEOUT = 600.0
#: Shares of a batch of changes: new entries, deletions, the rest updates.
NEW_SHARE, DELETE_SHARE = 0.8, 0.1
#: What the peer's figure is (in the JSON beside it).
PEER = {"client": "python-threatexchange NCMECSignalExchangeAPI.fetch_iter (HMA's fetch path)",
        "includes": "fetch and parse only; HMA's storage into its own database is not run"}  # fmt: skip


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _settings(home: str, database_url: str):
    from safehold.config import Settings

    return Settings(home=Path(home), database_url=database_url)


# ------------------------------------------------------------------------------------------------ children


def serve(entries: int) -> None:
    """Child: the stand-in. Prints its URL; then each ``change RUN COUNT`` line on stdin applies that many changes
    and answers ``{"last_new_pdq": …}``; stdin closed: stop."""
    from safehold.sharing.exchanges.ncmec_standin import NcmecStandIn

    end = int(time.time()) - SPREAD_END_AGO
    standin = NcmecStandIn(USER, PASSWORD)
    standin.generate(entries, start=end - entries, end=end)
    print(standin.start(), flush=True)
    for line in sys.stdin:
        _, run, count = line.split()
        print(json.dumps(change(standin, entries, int(run), int(count))), flush=True)
    standin.stop()


def _digests(seed: str) -> dict[str, str]:
    b = seed.encode()
    return {"md5": hashlib.md5(b).hexdigest(), "sha1": hashlib.sha1(b).hexdigest(),
            "pdq": hashlib.sha256(b).hexdigest()}  # fmt: skip


def change(standin, synthetic: int, run: int, count: int) -> dict:
    """``count`` changes stamped now: new image entries, deletions and new PDQs of synthetic entries (picked at
    random, distinct within the run, images so that each has a PDQ to replace)."""
    new = int(count * NEW_SHARE)
    deleted = int(count * DELETE_SHARE)
    updated = count - new - deleted
    images = (n for n in random.Random(run).sample(range(synthetic), min(synthetic, 2 * (deleted + updated))) if n % 10)
    members = 5  # NcmecStandIn.generate's default: entry n belongs to member 1 + n % 5
    for _ in range(deleted):
        n = next(images)
        standin.delete(1 + n % members, f"s{n}")
    for _ in range(updated):
        n = next(images)
        fps = {**standin.entry(n).fingerprints, "pdq": _digests(f"update-{run}-{n}")["pdq"]}
        standin.put(1 + n % members, f"s{n}", fps, classification="A1")
    for i in range(new):
        fps = _digests(f"new-{run}-{i}")
        standin.put(1, f"n{run}-{i}", fps, classification="A1")
    return {"new": new, "deleted": deleted, "updated": updated, "last_new_pdq": fps["pdq"]}


def full_fetch(home: str, database_url: str, url: str, entries: int) -> None:
    """Child: configure the exchange and its bank, run one round from the beginning; print its figures."""
    from safehold.services import Services

    svc = Services(_settings(home, database_url), load_index=False, lazy=True)
    svc.banks.create(BANK, created_by="bench")
    svc.exchanges.create(
        EXCHANGE, "ncmec", BANK, settings={"base_url": url, "lag_seconds": 0},
        credentials={"username": USER, "password": PASSWORD}, actor="bench",
    )  # fmt: skip
    rss = _rss_mb()
    t = time.perf_counter()
    figures = svc.exchanges.fetch_once(EXCHANGE, actor="bench")
    seconds = time.perf_counter() - t
    bank_entries = svc.banks.get(BANK).entries
    svc.close()
    print(json.dumps({
        "seconds": round(seconds, 1), "entries_per_s": round(entries / seconds), "records": figures["fetched"],
        "records_per_s": round(figures["fetched"] / seconds), "added": figures["added"],
        "batches": figures["batches"], "malformed": figures["malformed"], "bank_entries": bank_entries,
        "rss_after_imports_mb": rss, "peak_rss_mb": _rss_mb(),
    }))  # fmt: skip


def server(home: str, database_url: str) -> None:
    """Child: a server's matching side. Loads the index, syncs it on its interval (as the ``index.sync`` task),
    prints ``ready``; then for each ``watch PDQ`` line: checks the hash does not match yet (``watching``), scans
    it every ``POLL_SECONDS`` until it matches and prints ``matched <epoch seconds>``."""
    from safehold.services import Services

    settings = _settings(home, database_url)
    t = time.perf_counter()
    svc = Services(settings)
    load = time.perf_counter() - t

    def sync_loop() -> None:
        while True:
            svc.index.sync()
            time.sleep(settings.index_sync_interval)

    threading.Thread(target=sync_loop, daemon=True).start()
    print(json.dumps({"index_load_seconds": round(load, 1), "rss_after_load_mb": _rss_mb()}), flush=True)
    for line in sys.stdin:
        value = line.split()[1]
        if svc.scans.scan_hash("pdq", value).matches:
            print(json.dumps({"error": "the watched hash matched before the round"}), flush=True)
            continue
        print("watching", flush=True)
        deadline = time.monotonic() + MATCH_TIMEOUT
        while not svc.scans.scan_hash("pdq", value).matches:
            if time.monotonic() > deadline:
                print(json.dumps({"error": f"no match after {MATCH_TIMEOUT} s"}), flush=True)
                break
            time.sleep(POLL_SECONDS)
        else:
            print(json.dumps({"matched_at": time.time()}), flush=True)
    print(json.dumps({"peak_rss_mb": _rss_mb()}), flush=True)


# ------------------------------------------------------------------------------------------- orchestration


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}


def _spawn(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *argv], env=_env(), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


def _line(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"a child ({proc.args[2]}) ended early with {proc.wait()}")
    return line.strip()


def _database(backend: str, tmp: Path):
    """A fresh, empty database for a backend: its URL and how to drop it (Services migrates it)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'safehold.db'}", lambda: None
    import psycopg

    name = f"bench_exchange_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}", drop


def run_peer(entries: int) -> dict:
    standin = _spawn("_serve", str(entries))
    try:
        url = _line(standin)
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "ncmec_fetch.py"), "_client", "peer", url],
            capture_output=True, text=True, env=_env(), check=True,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        standin.stdin.close()
        standin.wait(timeout=60)


def run_backend(backend: str, entries: int, runs: int, changes: int) -> dict:
    from safehold.services import Services
    from safehold.store.db import open_database

    with tempfile.TemporaryDirectory(prefix="bench-exchange-") as tmp:
        home = str(Path(tmp) / "home")
        url_db, drop = _database(backend, Path(tmp))
        standin = _spawn("_serve", str(entries))
        srv = None
        try:
            url = _line(standin)
            # Migrated here: the fetch process's peak RSS is then its own, not the migrations'.
            open_database(_settings(home, url_db), create=True).dispose()
            out = subprocess.run(
                [sys.executable, __file__, "_full", home, url_db, url, str(entries)],
                capture_output=True, text=True, env=_env(), check=True,
            )  # fmt: skip
            result = {"backend": backend, "full": json.loads(out.stdout.strip().splitlines()[-1])}
            print(backend, "full", result["full"], flush=True)
            srv = _spawn("_server", home, url_db)
            result["server"] = json.loads(_line(srv))
            svc = Services(_settings(home, url_db), load_index=False, lazy=True)
            rounds = []
            for run in range(1, runs + 1):
                standin.stdin.write(f"change {run} {changes}\n")
                standin.stdin.flush()
                made = json.loads(_line(standin))
                time.sleep(1.1)  # past the second the changes were stamped in (NCMEC's timestamps are seconds)
                srv.stdin.write(f"watch {made['last_new_pdq']}\n")
                srv.stdin.flush()
                if (said := _line(srv)) != "watching":
                    raise SystemExit(f"server: {said}")
                started = time.time()
                figures = svc.exchanges.fetch_once(EXCHANGE, actor="bench")
                answer = json.loads(_line(srv))
                if "error" in answer:
                    raise SystemExit(f"server: {answer['error']}")
                rounds.append({
                    "round_seconds": figures["seconds"], "until_matchable_seconds": round(
                        answer["matched_at"] - started, 3), "fetched": figures["fetched"],
                    "added": figures["added"], "removed": figures["removed"], "batches": figures["batches"],
                })  # fmt: skip
                print(backend, "incremental", rounds[-1], flush=True)
            svc.close()
            srv.stdin.close()
            result["server"].update(json.loads(srv.stdout.read().strip().splitlines()[-1]))
            srv.wait(timeout=60)
            srv = None
            result["incremental"] = {"changes": changes, "runs": rounds, **_summary(rounds)}
            return result
        finally:
            for proc in (srv, standin):
                if proc is not None:
                    proc.stdin.close()
                    proc.wait(timeout=60)
            drop()


def _summary(rounds: list[dict]) -> dict:
    out = {}
    for key in ("round_seconds", "until_matchable_seconds"):
        values = [r[key] for r in rounds]
        out[key] = {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=2_000_000, help="entries on the stand-in (default 2 M)")
    ap.add_argument("--changes", type=int, default=10_000, help="changes per incremental round")
    ap.add_argument("--runs", type=int, default=3, help="incremental rounds per backend")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--no-peer", action="store_true", help="skip python-threatexchange's client")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "exchange_sync.json")
    args = ap.parse_args()
    if args.entries < args.changes:
        raise SystemExit("--entries must be at least --changes (each run's deletions and updates pick entries)")
    result = {"benchmark": "exchange_sync", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(), "entries": args.entries, "page_size": 1000, "backends": {}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each case: a long run keeps what it has
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    if not args.no_peer:
        result["peer"] = {**PEER, **run_peer(args.entries)}
        print("peer", result["peer"], flush=True)
        save()
    for backend in args.backends.split(","):
        result["backends"][backend] = run_backend(backend, args.entries, args.runs, args.changes)
        save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    commands = {"_serve": lambda a: serve(int(a[0])), "_full": lambda a: full_fetch(*a[:3], int(a[3])),
                "_server": lambda a: server(*a)}  # fmt: skip
    if len(sys.argv) > 1 and sys.argv[1] in commands:
        commands[sys.argv[1]](sys.argv[2:])
    else:
        main()
