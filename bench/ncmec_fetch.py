"""NCMEC fetch benchmark: a full fetch of a large NCMEC list from the local stand-in, ours against the peer's.

One run, one machine, one stand-in (its own process, ``--entries`` synthetic entries, 1000 a page):

- ours: :class:`safehold.sharing.exchanges.ncmec.NcmecExchange` ``fetch(None)`` to the end, every batch handed to
  :func:`consume` (where the lead plugs writing into a bank);
- peer: python-threatexchange's ``NCMECSignalExchangeAPI.fetch_iter`` (the fetch path Meta's HMA runs), every
  delta counted the same way.

Each client runs in its own process, one after the other, so its peak RSS (``ru_maxrss``) is its own, reported with
the RSS once its imports are done (Safehold's signal registry, which a server has loaded anyway, is most of ours);
entries/s is entries read over wall time, the stand-in's serving included (the same for both). Ours checks every
value with its signal type while reading; the peer's fetch path does not (HMA does it later, when storing). The
peer re-reads some entries while it probes window sizes (its ``entries`` counts them again). The stand-in runs on
loopback; NCMEC's real API is never contacted.

Usage::

    python bench/ncmec_fetch.py --entries 2000000 --out bench/results/ncmec_fetch.json
    python bench/ncmec_fetch.py --quick          # 200 000 entries
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from machine_info import machine  # noqa: E402

USER, PASSWORD = "esp", "secret"
#: Synthetic entries are spread one per second over the window ending a day ago.
SPREAD_END_AGO = 86400


def serve(entries: int) -> None:
    """Child: run the stand-in, print its URL, serve until stdin closes."""
    from safehold.sharing.exchanges.ncmec_standin import NcmecStandIn

    end = int(time.time()) - SPREAD_END_AGO
    standin = NcmecStandIn(USER, PASSWORD)
    standin.generate(entries, start=end - entries, end=end)
    print(standin.start(), flush=True)
    sys.stdin.read()
    standin.stop()


def consume(batch, counts: dict) -> None:
    """What a fetch does with each batch. Here: count; the lead extends it to write ``batch.records`` (and the
    unknown signals) into the exchange's bank with ``batch.checkpoint``, in one transaction."""
    counts["records"] += len(batch.records)
    counts["unknown"] += len(batch.unknown)
    counts["malformed"] += batch.malformed
    counts["entries"] += len({r.external_id for r in batch.records})


def run_ours(url: str, ready) -> dict:
    from safehold.sharing.exchanges.ncmec import NcmecCredentials, NcmecExchange, NcmecSettings
    from safehold.signals import registry

    registry.all_signal_types()  # loaded by any Safehold server before a fetch; part of the baseline
    ready()
    ex = NcmecExchange(NcmecSettings(base_url=url, lag_seconds=0), NcmecCredentials(username=USER, password=PASSWORD))
    counts = {"records": 0, "unknown": 0, "malformed": 0, "entries": 0, "pages": 0}
    for batch in ex.fetch(None):
        counts["pages"] += 1
        consume(batch, counts)
    return counts


def run_peer(url: str, ready) -> dict:
    from threatexchange.exchanges.clients.ncmec import hash_api as api
    from threatexchange.exchanges.impl.ncmec_api import NCMECCollabConfig, NCMECSignalExchangeAPI

    ready()

    def client(_env):
        c = api.NCMECHashAPI(USER, PASSWORD, api.NCMECEnvironment.test_Industry)
        c._base_url = url  # its environments are NCMEC's fixed URLs
        return c

    collab = NCMECCollabConfig(name="ncmec", environment=api.NCMECEnvironment.test_Industry)
    peer = NCMECSignalExchangeAPI(collab, USER, PASSWORD)
    peer.get_client = client
    counts = {"records": 0, "entries": 0, "pages": 0}
    for delta in peer.fetch_iter([], None):
        counts["pages"] += 1
        counts["entries"] += len(delta.updates)
        counts["records"] += sum(len(u.fingerprints) or 1 for u in delta.updates.values())
    return counts


def client(which: str, url: str) -> None:
    """Child: one full fetch; prints its figures as JSON."""
    marks: dict = {}

    def ready() -> None:  # imports done: the fetch's own memory is what peak RSS adds to this
        marks["rss"] = _rss_mb()
        marks["t"] = time.perf_counter()

    counts = (run_ours if which == "ours" else run_peer)(url, ready)
    seconds = time.perf_counter() - marks["t"]
    print(json.dumps({**counts, "seconds": round(seconds, 2), "entries_per_s": round(counts["entries"] / seconds),
                      "rss_after_imports_mb": marks["rss"], "peak_rss_mb": _rss_mb()}))  # fmt: skip


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=2_000_000)
    ap.add_argument("--quick", action="store_true", help="200 000 entries")
    ap.add_argument("--only", choices=("ours", "peer"), help="run one client")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ncmec_fetch.json")
    args = ap.parse_args()
    entries = 200_000 if args.quick else args.entries
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    me = [sys.executable, __file__]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    server = subprocess.Popen([*me, "_serve", str(entries)], env=env, text=True, **pipes)
    try:
        url = server.stdout.readline().strip()
        if not url:
            raise SystemExit("the stand-in did not start")
        result = {"benchmark": "ncmec_fetch", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "machine": machine(), "entries": entries, "page_size": 1000}  # fmt: skip
        for which in ("ours", "peer"):
            if args.only and which != args.only:
                continue
            out = subprocess.run([*me, "_client", which, url], capture_output=True, text=True, env=env, check=True)
            result[which] = json.loads(out.stdout.strip().splitlines()[-1])
            print(which, result[which], flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each client: a long run keeps its half
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_client":
        client(sys.argv[2], sys.argv[3])
    else:
        main()
