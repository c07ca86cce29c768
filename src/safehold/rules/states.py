"""Conversations' scoring states kept in the process between their messages, so a chat message does not read
and decode its conversation's state from the database each time.

A conversation's state (a few kilobytes of JSON: each participant's stages, evidence and top messages) is read,
decoded and rebuilt into a :class:`~safehold.text.grooming.scorer.ConversationState` for every message; on a
busy chat door that was a fifth of the CPU per message, and the database's work of sending it. A batch of
messages (:meth:`safehold.rules.conversations.ConversationService._score_many`) instead reads each conversation's
row *version* — its message count and last update — with the row lock it takes anyway, and reads the state
only for the conversations whose version is not the one kept here.

Why this is safe:

- **Checked against the row, under its lock.** An entry is used only when the row, locked in the batch's own
  transaction, still has the version the entry was stored with. Any other writer — another API process, the
  one-request path, a forget and re-creation — changes the message count or the update time (to the
  microsecond), so its write is seen as a miss and the state is read from the row.
- **Taken, not shared.** A batch *takes* its entries out (:meth:`take`) and hands them back only after its
  update was executed (:meth:`keep`), under the version it wrote. A batch whose runner fails leaves nothing
  behind; one whose transaction fails after that (another item, the commit) leaves versions the rows never got,
  which the next read sees as misses.
- **Bounded.** At most ``capacity`` states (least recently used go first; about 8 KB of memory each for a
  conversation of seven participants, measured with tracemalloc); ``0`` keeps none.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

Version = tuple[Any, ...]


class StateCache:
    """Row id → (version, state); see the module docs."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: collections.OrderedDict[int, tuple[Version, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def take(self, row_id: int, version: Version) -> Any | None:
        """The state kept for ``row_id`` at ``version``, removed from the cache; None when there is none or it
        was kept at another version (the row was written elsewhere since)."""
        with self._lock:
            entry = self._entries.pop(row_id, None)
        if entry is None or entry[0] != version:
            return None
        return entry[1]

    def keep(self, row_id: int, version: Version, state: Any) -> None:
        """Keep ``state`` as ``row_id``'s at ``version`` (what the row holds once the caller's transaction
        commits), dropping the least recently used beyond the capacity."""
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[row_id] = (version, state)
            self._entries.move_to_end(row_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
