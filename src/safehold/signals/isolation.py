"""One costly decode in a child process: a hard deadline, a lower CPU priority, and its memory gone when it ends.

A 49-megapixel PNG of 143 KB costs a second of CPU and half a gigabyte to hash. In the server's process that
second is spent mostly holding the interpreter lock (Pillow copies the bitmap out under it), so every other
request waits, and the memory freed afterwards stays fragmented in the process. No decoder setting bounds a PNG's
decode time either. :class:`Isolation` runs such a hash in a child forked from a small, preloaded fork server:
the child runs at a lower priority (``nice``), is killed when ``timeout`` passes (``media.too_complex``), and
returns all its memory to the system when it exits. The caller's thread only waits on a pipe, holding nothing.

Forking costs a few milliseconds, so only large images are sent there (``min_pixels``); ordinary ones are hashed
in the calling thread as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar

from safehold.errors import SafeholdError, detached

T = TypeVar("T")
log = logging.getLogger(__name__)
#: Modules the fork server imports once, so a forked child starts with the hashers loaded (numba kernels too).
#: ``__main__`` first: a child then finds the main script already imported and does not import it again (under the
#: ``safehold`` console script that re-import cost about 100 ms a child). As with any multiprocessing program, a
#: script that embeds Safehold must guard its entry point with ``if __name__ == "__main__":``.
PRELOAD = ["__main__", "safehold.signals.registry", "safehold.signals.forkserver"]
_context = None


def _fork_server():
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


def _child(conn, nice: int, fn: Callable, args: tuple, kwargs: dict) -> None:
    try:
        os.nice(nice)
        # if memory runs out while it decodes, the kernel's OOM killer takes this child, not the server
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    try:
        out = (True, fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - raised again in the parent, where the hasher's caller maps it
        out = (False, detached(exc))
    conn.send(out)
    conn.close()


class Isolation:
    """Where and how long a large image may be decoded: ``min_pixels`` and up go to a child, for ``timeout`` s."""

    def __init__(self, min_pixels: int, timeout: float, *, nice: int = 10):
        self.min_pixels = int(min_pixels)
        self.timeout = float(timeout)
        self.nice = int(nice)

    def start(self) -> None:
        """Start the fork server now (about a second: it loads the hashers) rather than on the first large image."""
        if self.min_pixels > 0:
            _fork_server()
            multiprocessing.forkserver.ensure_running()

    def wanted(self, pixels: int) -> bool:
        return self.min_pixels > 0 and pixels >= self.min_pixels

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a child process; what it raises is raised here as if raised in process (so
        :func:`safehold.signals.registry.hash_content` maps a ``MemoryError`` or a hasher's bug as it always does).

        ``fn`` must be importable by name (a module-level function) and its arguments and result picklable.
        """
        ctx = _fork_server()
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(sender, self.nice, fn, args, kwargs), daemon=True)
        try:
            child.start()
            sender.close()
            if not receiver.poll(self.timeout):
                raise SafeholdError(
                    "media.too_complex",
                    f"Decoding the image took longer than {self.timeout:g} s.",
                    status=422,
                    detail={"timeout_seconds": self.timeout},
                )
            ok, value = receiver.recv()
        except EOFError:  # the child died without answering
            child.join()
            raise _died(child.exitcode) from None
        finally:
            if child.is_alive():
                child.kill()
            if child.pid is not None:
                child.join()
                child.close()
            sender.close()
            receiver.close()
        if ok:
            return value
        raise value


def _died(exitcode: int | None) -> SafeholdError:
    """Why a child ended without an answer: killed (by the OOM killer, for its memory), or anything else."""
    if exitcode == -signal.SIGKILL:
        return SafeholdError("media.too_large", "Decoding the image ended its worker process.", status=413)
    log.error("isolated hash: the child process ended with exit code %s and no answer", exitcode)
    return SafeholdError(
        "signal.hasher_failed", f"The image's worker process ended with exit code {exitcode}.", status=500
    )
