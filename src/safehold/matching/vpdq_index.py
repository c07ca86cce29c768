"""vPDQ index: find banked videos sharing frames with a query video, then apply Meta's vPDQ rule to each.

Every frame of every banked video goes into one :class:`~safehold.matching.pdq_index.PdqIndex` (frame ids
assigned here), with the frame → video owner mapping beside it. A query looks up all its frames at the frame
distance threshold, collects the videos that own a hit and compares each one whole
(:func:`~safehold.matching.vpdq.prepared_distances`). A hit is ``(entry id, 0, detail)``; ``detail`` carries
``query_match_percent``, ``target_match_percent`` and ``is_match`` (Meta's 80 % / 0 % rule) at the query
threshold, and — because banks may each use a narrower frame threshold — how many frames of each side have their
nearest frame at each distance up to it (``query_hits_by_distance``, ``target_hits_by_distance``, with
``query_frames``/``target_frames``), so the rule can be applied again at any bank's threshold
(:meth:`~safehold.signals.vpdq.VpdqSignal.is_match`) without comparing the frames again.

Implements :class:`~safehold.matching.protocol.SignalIndex`. Snapshots hold the values (one JSON line per video)
and rebuild the frame index on load: frames are cheap to index and the values are what the database holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from safehold.errors import SafeholdError
from safehold.matching.pdq_index import PdqIndex, hashes_from_hex
from safehold.matching.protocol import write_atomically
from safehold.matching.vpdq import VpdqFrame, is_meta_match, match_percents, parse_vpdq, prepared_distances

_FORMAT = "safehold.vpdq_index"
_VERSION = 1


class VpdqIndex:
    """Banked videos by their frames. One writer at a time (the caller's lock); queries need no lock."""

    def __init__(self) -> None:
        self.frames = PdqIndex()
        self._frame_owner: list[int] = []  # frame id -> entry id (append-only)
        self._entry_frames: dict[int, np.ndarray] = {}  # entry id -> its frame ids
        self._entries: dict[int, tuple[str, list[VpdqFrame]]] = {}  # entry id -> (value, parsed frames)

    def __len__(self) -> int:
        """Videos held."""
        return len(self._entries)

    def memory_bytes(self) -> int:
        return self.frames.memory_bytes() + 8 * len(self._frame_owner)

    def add(self, ids, values: Sequence[str]) -> None:
        ids_l = np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
        if len(ids_l) != len(values):
            raise SafeholdError("index.bad_input", f"{len(ids_l)} ids for {len(values)} values")
        for entry_id, value in zip(ids_l, values, strict=True):
            if entry_id in self._entries:
                continue  # the frames are indexed once
            frames = parse_vpdq(value)
            first = len(self._frame_owner)
            frame_ids = np.arange(first, first + len(frames), dtype=np.int64)
            self._frame_owner.extend([entry_id] * len(frames))
            self.frames.add(frame_ids, hashes_from_hex([f.pdq_hex for f in frames]))
            self._entry_frames[entry_id] = frame_ids
            self._entries[entry_id] = (value, frames)

    def remove(self, ids) -> int:
        removed = 0
        for entry_id in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            frames = self._entry_frames.pop(entry_id, None)
            if frames is not None:
                self.frames.remove(frames)
            removed += self._entries.pop(entry_id, None) is not None
        return removed

    def query(self, value: str, threshold: int) -> list[tuple[int, int, dict]]:
        """Banked videos sharing a frame within ``threshold`` bits, each compared whole (detail: see module)."""
        frames = parse_vpdq(value)
        if len(self.frames) == 0:
            return []
        owners: set[int] = set()
        for hits in self.frames.query_batch(hashes_from_hex([f.pdq_hex for f in frames]), threshold):
            owners.update(self._frame_owner[i] for i, _ in hits)
        out = []
        for entry_id in sorted(owners):
            target = self._entries.get(entry_id)
            if target is None:  # removed since the frame query
                continue
            out.append((entry_id, 0, _detail(frames, target[1], threshold)))
        return out

    def query_batch(self, values: Sequence[str], threshold: int) -> list[list[tuple[int, int, dict]]]:
        return [self.query(v, threshold) for v in values]

    def save(self, path: str | os.PathLike) -> None:
        def write(f) -> None:
            f.write(json.dumps({"format": _FORMAT, "version": _VERSION}) + "\n")
            for entry_id, (value, _) in self._entries.items():
                f.write(json.dumps([entry_id, value]) + "\n")

        write_atomically(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> VpdqIndex:
        idx = cls()
        with open(path) as f:
            try:
                head = json.loads(f.readline())
                if head != {"format": _FORMAT, "version": _VERSION}:
                    raise ValueError("not a vPDQ index of this version")
                rows = [json.loads(line) for line in f]
            except (ValueError, TypeError) as e:
                raise SafeholdError("index.snapshot_invalid", f"{path}: {e}") from None
        if rows:
            idx.add([r[0] for r in rows], [r[1] for r in rows])
        return idx


def _detail(query: list[VpdqFrame], target: list[VpdqFrame], threshold: int) -> dict:
    q_near, t_near = prepared_distances(query, target)
    q_pct, t_pct = match_percents(q_near, t_near, threshold)
    return {
        "query_match_percent": round(q_pct, 2),
        "target_match_percent": round(t_pct, 2),
        "is_match": is_meta_match(q_pct, t_pct),
        "query_frames": len(q_near),
        "target_frames": len(t_near),
        "query_hits_by_distance": _histogram(q_near, threshold),
        "target_hits_by_distance": _histogram(t_near, threshold),
    }


def _histogram(nearest: np.ndarray, threshold: int) -> list[int]:
    """Frames whose nearest frame on the other side is at distance 0, 1, … ``threshold`` (at most 64 counts)."""
    return np.bincount(nearest[nearest <= threshold], minlength=max(threshold, 0) + 1).tolist()
