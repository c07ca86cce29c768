"""The one protocol every matching index implements, so the bank index can hold any signal type's index.

A signal type names its index class (:meth:`safehold.signals.base.SignalType.index_cls`); the bank index
builds one instance per type, feeds it ``(entry id, canonical value)`` pairs and asks it for the entries near a
value. Nothing outside the index knows how it searches: PDQ uses multi-index hashing
(:class:`~safehold.matching.pdq_index.PdqIndex`), cryptographic hashes a dict
(:class:`~safehold.matching.exact_index.ExactIndex`), vPDQ a frame index
(:class:`~safehold.matching.vpdq_index.VpdqIndex`), and a plug-in its own class or the brute-force
:class:`~safehold.matching.vector_index.VectorIndex`.

A *hit* is a tuple ``(entry id, distance)``, or ``(entry id, distance, detail)`` when the index has more to say
about the match (vPDQ: the frame-match percentages and whether Meta's rule calls it a match). Plain tuples keep
the PDQ hot path free of per-hit objects. ``threshold`` is in the signal type's own units (bits, L2 distance …);
the bank index passes the widest threshold any enabled bank uses and each bank's own is applied afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from safehold.home import private_opener, unique_suffix

Hit = tuple[int, int] | tuple[int, int, dict]

#: What a class must define to be an index (checked when a plug-in is loaded).
INDEX_METHODS = ("add", "remove", "query", "query_batch", "save", "load", "__len__", "memory_bytes")


@runtime_checkable
class SignalIndex(Protocol):
    """An in-memory index of ``(entry id, value)`` pairs of one signal type; safe to query while one writer adds."""

    def add(self, ids: Any, values: Sequence[str]) -> None:
        """Add entries (ids: 1-D integers; values: canonical text, as the signal type's ``normalize`` gives).
        The caller adds an id at most once (the bank index's record of each entry's bank sees to it)."""

    def remove(self, ids: Any) -> int:
        """Remove every value held under these ids; return how many were removed. Absent ids are ignored."""

    def query(self, value: str, threshold: int) -> list[Hit]:
        """Entries within ``threshold`` of ``value``."""

    def query_batch(self, values: Sequence[str], threshold: int) -> list[list[Hit]]:
        """:meth:`query` for each value, in one call (one list of hits per value, in order)."""

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to one file at ``path`` (atomically)."""

    @classmethod
    def load(cls, path: str | os.PathLike) -> SignalIndex:
        """Read what :meth:`save` wrote; a foreign or corrupt file raises ``SafeholdError``."""

    def __len__(self) -> int:
        """Entries (or values) held."""

    def memory_bytes(self) -> int:
        """Rough memory held, for status pages."""


def missing_methods(cls: type) -> list[str]:
    """The protocol methods ``cls`` does not define (empty when it is an index)."""
    return [m for m in INDEX_METHODS if not callable(getattr(cls, m, None))]


def write_atomically(path: str | os.PathLike, write: Callable[[IO], None], *, mode: str = "w") -> None:
    """Write a snapshot file owner-only (0600) through a temporary file, fsync and rename (then fsync the folder,
    so the rename survives a crash): a reader never sees half a snapshot, whatever kills the writer."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{unique_suffix()}")
    try:
        with open(tmp, mode, opener=private_opener) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a platform or file system that cannot open folders: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
