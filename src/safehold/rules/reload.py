"""Hot reload without a restart, shared by the term lists (:mod:`safehold.rules.terms`) and the CEL rules
(:mod:`safehold.rules.book`).

Every process polls a small table's fingerprint in its upkeep loop (``sync``); when it changed, a new value is
built off to the side and swapped in with one assignment, so a request in flight finishes on the old one and the
next sees the new. The value carries the fingerprint it was built from (``value.fingerprint``).
"""

from __future__ import annotations

import threading
from typing import Any


class HotReloaded:
    """A mixin: ``current()`` is the value in force, ``sync()`` rebuilds it when ``_fingerprint()`` changed. The
    class sets ``_current = None`` and its own ``_reload_lock`` in ``__init__``."""

    _current: Any
    _reload_lock: threading.Lock

    def _fingerprint(self) -> tuple:
        raise NotImplementedError

    def _build(self, fingerprint: tuple) -> Any:
        raise NotImplementedError

    def _built(self, value: Any) -> None:
        """Called after a rebuild (to log what was built)."""

    def current(self) -> Any:
        """The value in force (built on first use; after that one attribute read)."""
        current = self._current
        if current is None:
            self.sync()
            current = self._current
        return current

    def sync(self) -> bool:
        """Rebuild the value if its fingerprint changed (here or in another process); True if it did."""
        fingerprint = self._fingerprint()
        if self._current is not None and self._current.fingerprint == fingerprint:
            return False
        with self._reload_lock:
            if self._current is not None and self._current.fingerprint == fingerprint:
                return False
            self._current = self._build(fingerprint)
        self._built(self._current)
        return True
