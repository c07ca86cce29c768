"""What a long-running server process sets on itself at start, before it starts threads, and once it is ready.

glibc's allocator keeps memory that Python, numpy and Pillow have freed: every thread that allocates may get an
arena of its own (up to eight per core), and after a large block is freed the threshold above which blocks are
mapped straight from the operating system rises to that block's size, so the next decoded image lands in an arena
and stays there when freed. A server that decodes images on dozens of worker threads then grows by gigabytes and
never shrinks (measured with 49-megapixel PNG bombs: about 2 GB still held after the load stopped). Two arenas
and a fixed 1 MiB mapping threshold give large buffers back to the system as soon as they are freed, at the cost
of an ``mmap`` per large allocation, which is small next to decoding the image.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (``malloc.h``).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 1024 * 1024


def tune_allocator() -> bool:
    """Bound glibc's arenas and fix its mapping threshold; False (and nothing changed) on another C library."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt, and their allocators do not keep arenas
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(M_ARENA_MAX, ARENAS) == 1 and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    if not ok:
        log.warning("could not tune the C allocator; memory freed by image decoding may be kept by the process")
    return ok


#: Container allocations (net of frees) between two young collections; Python's default is 700.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Take everything alive once the server is ready out of the garbage collector's sight (``gc.freeze``), and
    collect the young generation every :data:`YOUNG_THRESHOLD` allocations instead of every 700.

    A ready server holds a few hundred thousand objects for its whole life: the routes and their models, the
    detectors, the rule programs, SQLAlchemy's mappings. Each full collection walks all of them — 200–300 ms with
    the interpreter held, measured on a server with a 1 M-hash bank — and a server answering hundreds of requests a
    second runs one every few seconds: each is a stall every request in flight waits out, and the p99 of the whole
    minute. Frozen, they are never walked again; a full collection then walks what was made since (a few
    milliseconds). Their own cycles are never freed, which costs nothing for objects that live as long as the
    process.

    The threshold: at a thousand requests a second, a young collection every 700 allocations caught each
    request's objects (its body, model, answer, the work waiting for its commit) while still alive and moved them
    to the old generation, which then grew fast enough for a full collection every half second — 40–75 ms each,
    walking every conversation state the process keeps (safehold.rules.states). At 10,000 they are freed before a
    collection sees them: 2,000 chat messages/s on one process gave 1 full collection in the run instead of 35
    (1.9 s of the interpreter held), p99 123 instead of 260 ms (docs/throughput.md). Most garbage is freed by
    reference counting anyway; only cycles wait a little longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
