"""Compile the numba kernels (PDQ hashing and the PDQ index) once, ahead of any user command.

The kernels are compiled on first use and cached on disk next to their modules (``cache=True``). Left to
themselves, the first scan a new user runs would sit silent for ten seconds or more while they compile. ``make``
runs ``python -m safehold.warmup`` right after installing, so the cache is already there when the user starts;
an installation from a wheel runs it as ``safehold warm-up`` (docs/deployment.md).

The warm-up drives the real code paths with small benign inputs — a generated image hashed in every mode, an
index built, queried (per-query, batched, brute force), shrunk, merged and saved — so that every signature the
product uses is compiled, rather than listing numba signatures by hand and letting them drift from the code.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from safehold.signals.warm import warm_hashers


def _index() -> None:
    import numpy as np

    from safehold.matching.pdq_index import PdqIndex

    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (4096, 32), dtype=np.uint8)
    index = PdqIndex(delta_cap=1024)
    index.add(np.arange(len(hashes)), hashes)
    index.merge()
    index.add(np.arange(len(hashes), len(hashes) + 16), hashes[:16])  # a delta beside the postings
    for threshold in (0, 31, 90):  # exact, the default, and a radius that takes the brute-force path
        index.query(hashes[0], threshold)
        index.query_batch(hashes[:64], threshold)
    # the probe-major batch kernel runs only for large batches on large indexes: lower its bar for the warm-up
    index.sorted_batch_min_rows = 1
    index.query_batch(hashes[:64], 31)
    index.remove(np.arange(8))
    index.compact()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warmup.idx"
        index.save(path)
        # a snapshot is memory-mapped read-only: other array types, so the same kernels compile again
        loaded = PdqIndex.load(path)
        loaded.sorted_batch_min_rows = 1
        for threshold in (31, 90):
            loaded.query(hashes[100], threshold)
            loaded.query_batch(hashes[:64], threshold)
        loaded.add(np.arange(10_000, 10_000 + len(hashes)), hashes)  # grows past the mapped arrays
        loaded.merge()  # merges a delta into existing postings
        loaded.query_batch(hashes[:64], 31)
        loaded.remove(np.arange(100, 108))
        loaded.compact()


STEPS: tuple[tuple[str, Callable[[], None]], ...] = (("PDQ hashing", warm_hashers), ("PDQ index", _index))


def warm_up(report: Callable[[str], None] = print) -> float:
    """Compile (or load from the cache) every kernel; returns the seconds it took."""
    start = time.perf_counter()
    for name, step in STEPS:
        t = time.perf_counter()
        step()
        report(f"  {name}: {time.perf_counter() - t:.1f} s")
    return time.perf_counter() - start


def main() -> None:
    print("Compiling Safehold's hashing and matching kernels (once; later runs load them from the cache)…")
    print(f"done in {warm_up():.1f} s")


if __name__ == "__main__":
    main()
