"""Exact-value index for cryptographic and URL hashes (MD5, SHA-1, SHA-256, canonical-URL hashes).

Implements :class:`~safehold.matching.protocol.SignalIndex`; every hit has distance 0.

A dict from value to the entry ids holding it, plus the reverse map so ``remove(ids)`` is cheap. Values are matched
exactly as given; hex digests are compared case-insensitively (normalised to lower case) — pass ``normalize=None``
to compare verbatim. Thread-safe: writers take a lock; readers do a single dict lookup.

Snapshots: a versioned, checksummed JSON document written atomically (temp file + fsync + rename); a foreign or
corrupt file raises ``SafeholdError('index.snapshot_invalid')``.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from safehold.errors import SafeholdError
from safehold.matching.protocol import write_atomically

__all__ = ["ExactIndex"]

_MAGIC = b"SAFEHOLD-EXACTIDX\n"
_VERSION = 1


def _lower(v: str) -> str:
    return v.strip().lower()


class ExactIndex:
    """value → entry ids."""

    def __init__(self, *, normalize: Callable[[str], str] | None = _lower):
        self._norm = normalize or (lambda v: v)
        self._by_value: dict[str, tuple[int, ...]] = {}
        self._by_id: dict[int, tuple[str, ...]] = {}
        self._n = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Number of (id, value) pairs held."""
        return self._n

    def _ids(self, ids) -> list[int]:
        arr = np.asarray(ids)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.size and arr.dtype.kind not in "iu":
            raise SafeholdError("index.bad_input", "ids must be integers")
        return [int(i) for i in arr.tolist()]

    def add(self, ids, values: Sequence[str]) -> None:
        ids_l = self._ids(ids)
        values = list(values)
        if len(ids_l) != len(values):
            raise SafeholdError("index.bad_input", f"{len(ids_l)} ids for {len(values)} values")
        for i, v in enumerate(values):
            if not isinstance(v, str) or not v:
                raise SafeholdError("index.bad_input", f"value #{i} must be a non-empty string", detail={"index": i})
        norm = [self._norm(v) for v in values]
        with self._lock:
            by_value, by_id = self._by_value, self._by_id
            for i, v in zip(ids_l, norm, strict=True):
                cur = by_value.get(v, ())
                if i in cur:
                    continue  # idempotent
                by_value[v] = cur + (i,)
                by_id[i] = by_id.get(i, ()) + (v,)
                self._n += 1

    def remove(self, ids) -> int:
        """Remove every value stored under these ids. Returns the number of (id, value) pairs removed."""
        removed = 0
        with self._lock:
            for i in self._ids(ids):
                vals = self._by_id.pop(i, ())
                for v in vals:
                    rest = tuple(x for x in self._by_value.get(v, ()) if x != i)
                    if rest:
                        self._by_value[v] = rest
                    else:
                        self._by_value.pop(v, None)
                    removed += 1
            self._n -= removed
        return removed

    def query(self, value: str, threshold: int = 0) -> list[tuple[int, int]]:
        """Entries holding exactly this value as ``(entry id, 0)``, ascending (``threshold`` has no meaning here)."""
        if not isinstance(value, str):
            raise SafeholdError("index.bad_input", "value must be a string")
        return [(i, 0) for i in sorted(self._by_value.get(self._norm(value), ()))]

    def query_batch(self, values: Iterable[str], threshold: int = 0) -> list[list[tuple[int, int]]]:
        get, norm = self._by_value.get, self._norm
        return [[(i, 0) for i in sorted(get(norm(v), ()))] for v in values]

    def memory_bytes(self) -> int:
        """Rough size of the maps (dict + tuples + strings)."""
        import sys

        total = sys.getsizeof(self._by_value) + sys.getsizeof(self._by_id)
        for v, ids in self._by_value.items():
            total += sys.getsizeof(v) + sys.getsizeof(ids)
        for vals in self._by_id.values():
            total += sys.getsizeof(vals)
        return total

    # ------------------------------------------------------------------ snapshots
    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        with self._lock:
            pairs = [[i, v] for i, vals in self._by_id.items() for v in vals]
        body = json.dumps({"format": "safehold.exact_index", "version": _VERSION, "pairs": pairs}).encode()
        head = _MAGIC + _VERSION.to_bytes(4, "little") + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")
        write_atomically(path, lambda f: f.write(head + body), mode="wb")

    @classmethod
    def load(cls, path: str | os.PathLike, **kw) -> ExactIndex:
        path = Path(path)

        def bad(why: str) -> SafeholdError:
            return SafeholdError(
                "index.snapshot_invalid",
                f"{path} is not a valid exact-index snapshot: {why}",
                detail={"path": str(path)},
            )

        try:
            raw = path.read_bytes()
        except OSError as e:
            raise bad(str(e)) from None
        n = len(_MAGIC)
        if len(raw) < n + 8 or raw[:n] != _MAGIC:
            raise bad("wrong magic")
        if int.from_bytes(raw[n : n + 4], "little") != _VERSION:
            raise bad("unsupported version")
        body = raw[n + 8 :]
        if zlib.crc32(body) & 0xFFFFFFFF != int.from_bytes(raw[n + 4 : n + 8], "little"):
            raise bad("checksum mismatch")
        try:
            doc = json.loads(body)
            pairs = doc["pairs"]
            if doc.get("format") != "safehold.exact_index":
                raise ValueError("format")
            idx = cls(**kw)
            if pairs:
                ids, values = zip(*pairs, strict=True)
                idx.add(np.array(ids, dtype=np.int64), list(values))
        except SafeholdError as e:
            raise bad(e.message) from None
        except (ValueError, KeyError, TypeError) as e:
            raise bad(f"{type(e).__name__}: {e}") from None
        return idx
