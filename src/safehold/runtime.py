"""What a long-running server process sets on itself at start, before it starts threads.

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
