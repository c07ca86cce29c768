"""A brute-force index over fixed-length byte vectors (L2 or Hamming distance), for plug-in signal types.

A plug-in whose hash is a fixed-length vector (PhotoDNA's 144 bytes, a 64-bit average hash, …) need not write an
index: it subclasses :class:`VectorIndex`, sets :attr:`~VectorIndex.dim` and :attr:`~VectorIndex.metric`, and
names the subclass in its signal type's ``index_cls()``. Values are the signal type's canonical text, hex by
default (override :meth:`~VectorIndex.decode` for another spelling).

Every query scans every vector with numpy (one vectorised pass, no per-vector Python), which is fast enough for
the lists a licensed hash usually comes in (10⁵–10⁶ entries: milliseconds to tens of milliseconds per query). A
type with larger banks should bring its own sub-linear index; the protocol is the same
(:class:`~safehold.matching.protocol.SignalIndex`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np

from safehold.errors import SafeholdError
from safehold.matching.protocol import write_atomically

_FORMAT = "safehold.vector_index.1"


class _State(NamedTuple):
    vecs: np.ndarray  # (capacity, dim) uint8
    ids: np.ndarray  # (capacity,) int64
    alive: np.ndarray  # (capacity,) bool
    n: int  # rows used


class VectorIndex:
    """Entries as rows of an ``(n, dim) uint8`` matrix; queries scan every live row.

    Readers take no lock: they read one immutable state (arrays are replaced, never resized, when they grow);
    writers are serialised by a lock.
    """

    #: Bytes per vector.
    dim: ClassVar[int] = 0
    #: ``l2``: Euclidean distance of the byte values, rounded to an integer; ``hamming``: differing bits.
    metric: ClassVar[Literal["l2", "hamming"]] = "l2"

    def __init__(self) -> None:
        if self.dim <= 0 or self.metric not in ("l2", "hamming"):
            raise SafeholdError("index.bad_input", f"{type(self).__qualname__} must set dim > 0 and metric l2/hamming")
        self._lock = threading.Lock()
        self._state = _State(
            np.empty((0, self.dim), np.uint8), np.empty(0, np.int64), np.empty(0, np.bool_), 0
        )  # fmt: skip

    @classmethod
    def decode(cls, value: str) -> np.ndarray:
        """One canonical value → ``(dim,) uint8`` (default: hex)."""
        try:
            raw = bytes.fromhex(value)
        except (TypeError, ValueError):
            raise SafeholdError("index.bad_input", "a vector value must be hex") from None
        if len(raw) != cls.dim:
            raise SafeholdError("index.bad_input", f"a vector value has {cls.dim} bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype=np.uint8)

    def _matrix(self, values: Sequence[str]) -> np.ndarray:
        if not values:
            return np.empty((0, self.dim), np.uint8)
        return np.stack([self.decode(v) for v in values])

    def __len__(self) -> int:
        st = self._state
        return int(st.alive[: st.n].sum())

    def memory_bytes(self) -> int:
        st = self._state
        return st.vecs.nbytes + st.ids.nbytes + st.alive.nbytes

    def add(self, ids, values: Sequence[str]) -> None:
        new_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = self._matrix(list(values))
        if len(new_ids) != len(rows):
            raise SafeholdError("index.bad_input", f"{len(new_ids)} ids for {len(rows)} values")
        with self._lock:
            st = self._state
            n, k = st.n, len(new_ids)
            if n + k > len(st.ids):
                cap = max(n + k, 2 * len(st.ids), 1024)
                vecs, idv, alive = np.empty((cap, self.dim), np.uint8), np.empty(cap, np.int64), np.zeros(cap, bool)
                vecs[:n], idv[:n], alive[:n] = st.vecs[:n], st.ids[:n], st.alive[:n]
            else:
                vecs, idv, alive = st.vecs, st.ids, st.alive
            vecs[n : n + k], idv[n : n + k], alive[n : n + k] = rows, new_ids, True
            self._state = _State(vecs, idv, alive, n + k)

    def remove(self, ids) -> int:
        gone = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock:
            st = self._state
            hit = np.isin(st.ids[: st.n], gone) & st.alive[: st.n]
            st.alive[: st.n][hit] = False
            return int(hit.sum())

    def _distances(self, vecs: np.ndarray, q: np.ndarray) -> np.ndarray:
        if self.metric == "hamming":
            return np.unpackbits(vecs ^ q, axis=1).sum(axis=1, dtype=np.int64)
        diff = vecs.astype(np.int32) - q.astype(np.int32)
        return np.rint(np.sqrt(np.einsum("ij,ij->i", diff, diff))).astype(np.int64)

    def _query(self, st: _State, q: np.ndarray, threshold: int) -> list[tuple[int, int]]:
        d = self._distances(st.vecs[: st.n], q)
        rows = np.flatnonzero((d <= threshold) & st.alive[: st.n])
        order = np.lexsort((st.ids[rows], d[rows]))  # nearest first, ties by id
        return list(zip(st.ids[rows][order].tolist(), d[rows][order].tolist(), strict=True))

    def query(self, value: str, threshold: int) -> list[tuple[int, int]]:
        """Entries within ``threshold`` of ``value`` as ``(entry id, distance)``, nearest first."""
        return self._query(self._state, self.decode(value), threshold)

    def query_batch(self, values: Sequence[str], threshold: int) -> list[list[tuple[int, int]]]:
        st = self._state
        return [self._query(st, q, threshold) for q in self._matrix(list(values))]

    def save(self, path: str | os.PathLike) -> None:
        st = self._state
        live = st.alive[: st.n]
        write_atomically(
            path,
            lambda f: np.savez(
                f,
                format=np.array(_FORMAT),
                metric=np.array(self.metric),
                vecs=st.vecs[: st.n][live],
                ids=st.ids[: st.n][live],
            ),  # fmt: skip
            mode="wb",
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorIndex:
        try:
            with np.load(path, allow_pickle=False) as z:
                if (str(z["format"]), str(z["metric"]), z["vecs"].shape[1:]) != (_FORMAT, cls.metric, (cls.dim,)):
                    raise ValueError(f"not a {cls.__qualname__} snapshot")
                vecs, ids = z["vecs"].astype(np.uint8), z["ids"].astype(np.int64)
        except (ValueError, KeyError, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise SafeholdError("index.snapshot_invalid", f"{path}: {e}") from None
        idx = cls()
        idx._state = _State(vecs, ids, np.ones(len(ids), bool), len(ids))
        return idx
