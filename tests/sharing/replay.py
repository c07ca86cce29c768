"""Applying what an exchange fetched the way the service does, to compare rounds: the live (type, value) set."""

from __future__ import annotations

from collections.abc import Iterable

from safehold.banks.formats._common import TOMBSTONE_SIGNAL_TYPE
from safehold.sharing.base import FetchBatch


def apply(batches: Iterable[FetchBatch], state: dict[str, set[tuple[str, str]]] | None = None):
    """``external_id → {(signal_type, value)}`` after applying ``batches`` in order onto ``state``."""
    state = {} if state is None else state
    for batch in batches:
        for record in batch.records:
            if record.signal_type == TOMBSTONE_SIGNAL_TYPE:
                state.pop(record.external_id, None)
            else:
                state.setdefault(record.external_id, set()).add((record.signal_type, record.value))
    return state


def live(state: dict[str, set[tuple[str, str]]]) -> set[tuple[str, str]]:
    return {pair for pairs in state.values() for pair in pairs}
