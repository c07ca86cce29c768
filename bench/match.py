"""PDQ matching benchmark: Safehold's PdqIndex vs Meta's HMA PDQ index, same data, same run.

HMA builds its PDQ index with ``PdqSignal.get_index_cls().build(entries)`` — in threatexchange 1.2.17 that is
``threatexchange.signal_type.pdq.pdq_index.PDQIndex`` (faiss ``IndexBinaryMultiHash``, 16 × 16-bit hash tables,
``nflip = threshold // 16``, match threshold 31). ``PDQIndex2`` (faiss ``IndexFlatL2``) exists in the package but is
not what ``PdqSignal`` returns, so it is not what HMA deploys.

Each system runs in its own subprocess (clean RSS); HMA runs twice, with jemalloc preloaded (as HMA's image does) and
without. Everything is single-threaded (OMP_NUM_THREADS=1, NUMBA_NUM_THREADS=1, faiss.omp_set_num_threads(1)).

Data: ``size`` random 256-bit hashes plus, for each of ``--queries`` queries, 32 planted neighbours at distances
0..31 (so every query has exactly 32 true matches at threshold 31, up to a negligible chance of a random hash being
that close — verified by brute force on a sample).

Usage::

    python bench/match.py --sizes 1000000,10000000 --queries 1000 --out bench/results/match.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machine_info import cpu_model

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
THRESHOLD = 31
PLANT = 32  # planted neighbours per query, at distances 0..31
SAMPLE = 50  # queries checked against a full brute-force scan
ROOT = Path(__file__).resolve().parent.parent


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_data(size: int, nq: int, seed: int = 20261127):
    """(db hashes (N,32) uint8, ids, queries (nq,32), planted ids (nq,PLANT), planted distances)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(size, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(nq, 32), dtype=np.uint8)
    qbits = np.unpackbits(queries, axis=1)
    planted = np.empty((nq, PLANT, 32), dtype=np.uint8)
    for i in range(nq):
        for d in range(PLANT):
            b = qbits[i].copy()
            b[rng.choice(256, size=d, replace=False)] ^= 1
            planted[i, d] = np.packbits(b)
    # planted rows go to random positions among the database
    n = size + nq * PLANT
    db = np.empty((n, 32), dtype=np.uint8)
    pos = rng.choice(n, size=nq * PLANT, replace=False)
    mask = np.ones(n, dtype=bool)
    mask[pos] = False
    db[mask] = base[: n - nq * PLANT]
    db[pos] = planted.reshape(-1, 32)
    ids = np.arange(n, dtype=np.int64) + 1
    planted_ids = ids[pos].reshape(nq, PLANT)
    planted_d = np.tile(np.arange(PLANT), (nq, 1))
    return db, ids, queries, planted_ids, planted_d


def recall(results: list[list[tuple[int, int]]], planted_ids, planted_d) -> dict:
    found = wrong_d = 0
    for i, res in enumerate(results):
        got = dict(res)
        for pid, pd in zip(planted_ids[i].tolist(), planted_d[i].tolist(), strict=True):
            if pd <= THRESHOLD and pid in got:
                found += 1
                wrong_d += int(got[pid] != pd)
    total = int((planted_d <= THRESHOLD).sum())
    return {"planted": total, "found": found, "recall": found / total, "wrong_distances": wrong_d}


def brute_counts(db, queries) -> list[int]:
    from safehold.matching._mih_kernels import count_within

    return count_within(np.ascontiguousarray(queries).view(np.uint64), db.view(np.uint64), len(db), THRESHOLD).tolist()


# ------------------------------------------------------------------------------------------------ workers
def worker_safehold(size: int, nq: int) -> dict:
    from safehold.matching.pdq_index import PdqIndex, hashes_from_hex

    out: dict = {"system": "safehold"}
    db, ids, queries, planted_ids, planted_d = make_data(size, nq)
    n = len(db)
    # warm the numba cache on a tiny index so compile time is not counted as build time
    w = PdqIndex()
    w.add(np.arange(20000), db[:20000])
    w.query_batch(queries[:2], THRESHOLD)
    w.query(queries[0], THRESHOLD)
    del w
    ns = min(100000, len(db))
    sample_hex = db[:ns].tobytes().hex()
    hexes = [sample_hex[i * 64 : (i + 1) * 64] for i in range(ns)]
    t = time.perf_counter()
    hashes_from_hex(hexes)
    out["hex_parse_s_per_million"] = (time.perf_counter() - t) * 1e6 / len(hexes)
    del hexes, sample_hex
    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    idx = PdqIndex()
    idx.add(ids, db)
    out["build_s"] = time.perf_counter() - t
    out["rss_delta_bytes_per_hash"] = (rss_bytes() - rss0) / n  # the index holds its own copy of the hashes
    out["computed_bytes_per_hash"] = idx.memory_bytes() / n
    out["n"] = n
    # batched
    t = time.perf_counter()
    res = idx.query_batch(queries, THRESHOLD)
    out["batch_qps"] = nq / (time.perf_counter() - t)
    t = time.perf_counter()
    res = idx.query_batch(queries, THRESHOLD)
    out["batch_qps"] = max(out["batch_qps"], nq / (time.perf_counter() - t))
    out["recall_batch"] = recall(res, planted_ids, planted_d)
    # single
    lat = []
    single = []
    t0 = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        single.append(idx.query(q, THRESHOLD))
        lat.append(time.perf_counter() - t)
    out["single_qps"] = nq / (time.perf_counter() - t0)
    out["single_p50_us"] = statistics.median(lat) * 1e6
    out["single_p99_us"] = float(np.percentile(lat, 99) * 1e6)
    out["recall_single"] = recall(single, planted_ids, planted_d)
    out["batch_equals_single"] = res == single
    qhex = [q.hex() for q in (bytes(x) for x in queries)]
    t0 = time.perf_counter()
    for h in qhex:
        idx.query(bytes.fromhex(h), THRESHOLD)
    out["single_qps_hex_input"] = nq / (time.perf_counter() - t0)
    # brute-force truth on a sample
    cnt = brute_counts(db, queries[:SAMPLE])
    out["sample_exact"] = all(c == len(r) for c, r in zip(cnt, single[:SAMPLE], strict=True))
    out["sample_truth_matches"] = int(sum(cnt))
    # other thresholds (exactness holds at any threshold; timing for orientation)
    out["batch_qps_by_threshold"] = {}
    for r in (0, 10, 47, 63):
        t = time.perf_counter()
        idx.query_batch_arrays(queries[:200], r)
        out["batch_qps_by_threshold"][str(r)] = 200 / (time.perf_counter() - t)
    # insert-to-matchable latency
    rng = np.random.default_rng(7)
    lat = []
    for i in range(20):
        h = rng.integers(0, 256, size=(1, 32), dtype=np.uint8)
        t = time.perf_counter()
        idx.add(np.array([10**12 + i]), h)
        hit = idx.query(h[0], THRESHOLD)
        lat.append(time.perf_counter() - t)
        assert any(e == 10**12 + i for e, _ in hit)
    out["insert_to_match_ms_median"] = statistics.median(lat) * 1e3
    out["insert_to_match_ms_max"] = max(lat) * 1e3
    # a forced delta merge (what every delta_cap inserts costs)
    t = time.perf_counter()
    idx.merge()
    out["merge_s"] = time.perf_counter() - t
    t = time.perf_counter()
    idx.remove(ids[:1000])
    out["remove_1000_ms"] = (time.perf_counter() - t) * 1e3
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


def worker_hma(size: int, nq: int) -> dict:
    import faiss
    from threatexchange.signal_type.pdq.signal import PdqSignal

    faiss.omp_set_num_threads(1)
    index_cls = PdqSignal.get_index_cls()
    out: dict = {
        "system": "hma",
        "index_cls": f"{index_cls.__module__}.{index_cls.__qualname__}",
        "threshold": index_cls.get_match_threshold(),
        "jemalloc": JEMALLOC in os.environ.get("LD_PRELOAD", ""),
    }
    db, ids, queries, planted_ids, planted_d = make_data(size, nq)
    n = len(db)
    gc.collect()
    rss0 = rss_bytes()
    big = db.tobytes().hex()
    entries = [(big[i * 64 : (i + 1) * 64], int(ids[i])) for i in range(n)]
    del big
    rss_in = rss_bytes()
    t = time.perf_counter()
    idx = index_cls.build(entries)
    out["build_s"] = time.perf_counter() - t
    del entries
    gc.collect()
    out["rss_delta_bytes_per_hash"] = (rss_bytes() - rss0) / n
    out["input_strings_bytes_per_hash"] = (rss_in - rss0) / n
    out["n"] = n
    qhex = [bytes(q).hex() for q in queries]

    def as_pairs(matches):
        return sorted(((m.metadata, m.similarity_info.distance) for m in matches), key=lambda x: (x[1], x[0]))

    # single, exactly as HMA's matcher calls it
    single = []
    lat = []
    t0 = time.perf_counter()
    for h in qhex:
        t = time.perf_counter()
        single.append(idx.query(h))
        lat.append(time.perf_counter() - t)
    out["single_qps"] = nq / (time.perf_counter() - t0)
    out["single_p50_us"] = statistics.median(lat) * 1e6
    out["single_p99_us"] = float(np.percentile(lat, 99) * 1e6)
    single = [as_pairs(m) for m in single]
    out["recall_single"] = recall(single, planted_ids, planted_d)
    # batched: HMA's index has no batch API; call its faiss matcher with the whole batch (the best HMA can do)
    mih = idx.index
    t = time.perf_counter()
    raw = mih.search_with_distance_in_result(qhex, THRESHOLD)
    batch = [[(idx.local_id_to_entry[i][1], int(d)) for i, _, d in raw[h]] for h in qhex]
    out["batch_qps"] = nq / (time.perf_counter() - t)
    out["recall_batch"] = recall(batch, planted_ids, planted_d)
    cnt = brute_counts(db, queries[:SAMPLE])
    out["sample_exact"] = all(c == len(r) for c, r in zip(cnt, single[:SAMPLE], strict=True))
    out["sample_truth_matches"] = int(sum(cnt))
    # insert-to-matchable latency (PDQIndex.add, then query)
    rng = np.random.default_rng(7)
    lat = []
    for i in range(3):
        h = bytes(rng.integers(0, 256, size=32, dtype=np.uint8)).hex()
        t = time.perf_counter()
        idx.add(h, 10**12 + i)
        hit = idx.query(h)
        lat.append(time.perf_counter() - t)
        assert any(m.metadata == 10**12 + i for m in hit)
    out["insert_to_match_ms_median"] = statistics.median(lat) * 1e3
    out["insert_to_match_ms_max"] = max(lat) * 1e3
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


# ------------------------------------------------------------------------------------------------ orchestrator
def run_worker(system: str, size: int, nq: int, jemalloc: bool) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    if jemalloc:
        env["LD_PRELOAD"] = JEMALLOC
    else:
        env.pop("LD_PRELOAD", None)
    cmd = [sys.executable, __file__, "--worker", system, "--size", str(size), "--queries", str(nq)]
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        return {"system": system, "error": p.stderr[-4000:], "jemalloc": jemalloc}
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["jemalloc"] = jemalloc
    res["wall_s"] = time.perf_counter() - t
    return res


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    info["cpu"] = cpu_model()
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_start"] = f.read().split()[:3]
        from importlib.metadata import version

        import threatexchange  # noqa: F401

        info["threatexchange"] = version("threatexchange")
        info["faiss"] = version("faiss-cpu")
        info["numba"] = version("numba")
    except Exception:
        pass
    return info


def fmt(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "bench/results/match.json"))
    ap.add_argument("--systems", default="safehold,hma_jemalloc,hma")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        fn = worker_safehold if args.worker == "safehold" else worker_hma
        print(json.dumps(fn(args.size, args.queries)))
        return
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "threshold": THRESHOLD,
        "queries": args.queries,
        "runs": [],
    }
    for size in [int(s) for s in args.sizes.split(",")]:
        for system in args.systems.split(","):
            kind = "safehold" if system.startswith("safehold") else "hma"
            res = run_worker(kind, size, args.queries, jemalloc=system.endswith("jemalloc"))
            res["size"] = size
            report["runs"].append(res)
            print(f"[{size:,}] {system}: {'ERROR ' + res['error'][-500:] if 'error' in res else 'ok'}", flush=True)
    with open("/proc/loadavg") as f:
        report["machine"]["loadavg_end"] = f.read().split()[:3]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    hdr = (
        f"{'size':>11} {'system':<14} {'recall':>7} {'single q/s':>11} {'batch q/s':>10} {'build s':>8} "
        f"{'B/hash':>7} {'peak RSS':>9} {'ins→match ms':>12}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in report["runs"]:
        if "error" in r:
            continue
        name = r["system"] + ("+jemalloc" if r.get("jemalloc") else "")
        rec = min(r["recall_single"]["recall"], r["recall_batch"]["recall"])
        bph = r.get("computed_bytes_per_hash") or r["rss_delta_bytes_per_hash"]
        print(
            f"{r['size']:>11,} {name:<14} {rec:>7.2%} {fmt(r['single_qps']):>11} {fmt(r['batch_qps']):>10} "
            f"{fmt(r['build_s'], 1):>8} {fmt(bph, 1):>7} {r['peak_rss_bytes'] / 2**30:>8.2f}G "
            f"{fmt(r['insert_to_match_ms_median'], 2):>12}"
        )
    for size in sorted({r["size"] for r in report["runs"]}):
        runs = {
            (r["system"], bool(r.get("jemalloc"))): r for r in report["runs"] if r["size"] == size and "error" not in r
        }
        s = runs.get(("safehold", False))
        for key in ((("hma", True)), ("hma", False)):
            h = runs.get(key)
            if s and h:
                peer = "hma+jemalloc" if key[1] else "hma"
                print(
                    f"{size:,}: safehold vs {peer}: single ×{s['single_qps'] / h['single_qps']:.1f}, "
                    f"batch ×{s['batch_qps'] / h['batch_qps']:.1f}, build ×{h['build_s'] / s['build_s']:.1f} faster"
                )
    print(f"raw JSON: {out}")


if __name__ == "__main__":
    main()
